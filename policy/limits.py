"""``CallerLimits``: each API key's requests and LLM tokens per minute, over a sliding window.

A request is admitted when the key has a request left and its token budget is not used up; the
tokens a call used are charged when the call ends (nobody knows them sooner), so one call may
overshoot and the next requests wait until the window moves on. Backed by the ``limits``
library: in memory here, and any of its storages (Redis included) can be passed in. Its sliding
window counter keeps two counters per key and limit (a moving window would keep one entry per
token: millions for a busy key).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from callbacks.background import BackgroundTasks
from callbacks.records import CallRecord
from errors import RateLimited
from policy.keys import Caller
from policy.tiers import Tier
from shared_state.link import Down, RedisLink

T = TypeVar("T")


class CallerLimits:
    def __init__(
        self,
        storage: Storage | None = None,
        *,
        link: RedisLink | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """``storage``: a shared one (Redis, for replicas); ``link`` says whether it answers.
        Without it, or while it is away, limits are counted in this process's memory."""
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared = SlidingWindowCounterRateLimiter(storage) if storage is not None else None
        self._link = link
        self._clock = clock  # the storage's own clock: wall time

    async def _run(self, operation: Callable[[SlidingWindowCounterRateLimiter], Awaitable[T]]) -> T:
        shared = self._shared
        if shared is None:
            return await operation(self._local)
        if self._link is None:
            return await operation(shared)
        result = await self._link.attempt_call(lambda: operation(shared))
        return await operation(self._local) if isinstance(result, Down) else result

    async def admit(self, caller: Caller) -> None:
        """Count one request against ``caller``'s key, or raise ``RateLimited`` with the wait.
        Callers without a key (an open server) have no limits."""
        if caller.key_id is None:
            return
        tokens = RateLimitItemPerMinute(caller.tier.tokens_per_minute)
        key = caller.key_id
        if not await self._run(lambda limiter: limiter.test(tokens, key, "tokens")):
            raise await self._refusal(caller, tokens, "tokens")
        requests = RateLimitItemPerMinute(caller.tier.requests_per_minute)
        if not await self._run(lambda limiter: limiter.hit(requests, key, "requests")):
            raise await self._refusal(caller, requests, "requests")

    async def _refusal(self, caller: Caller, item: RateLimitItem, unit: str) -> RateLimited:
        key = str(caller.key_id)
        stats = await self._run(lambda limiter: limiter.get_window_stats(item, key, unit))
        allowed = item.amount
        return RateLimited(
            f"the {caller.tier_name} tier allows {allowed} {unit} per minute per key, and this key has used them: "
            "wait for Retry-After",
            retry_after=stats.reset_time - self._clock(),
            details={"limit": f"{unit}_per_minute", "allowed": allowed},
        )

    async def charge_tokens(self, key_id: str, tokens_per_minute: int, tokens: int) -> None:
        """Charge tokens a call used; what does not fit fills the budget to the brim."""
        if tokens <= 0:
            return
        item = RateLimitItemPerMinute(tokens_per_minute)
        stats = await self._run(lambda limiter: limiter.get_window_stats(item, key_id, "tokens"))
        cost = min(tokens, stats.remaining)
        if cost > 0:
            await self._run(lambda limiter: limiter.hit(item, key_id, "tokens", cost=cost))


class TokenMeter:
    """Call-record listener: charges each call's tokens to the API key that made it."""

    def __init__(self, limits: CallerLimits, tiers: Mapping[str, Tier]):
        self.limits = limits
        self.tiers = tiers
        self._tasks = BackgroundTasks()

    def __call__(self, record: CallRecord) -> None:
        key_id, tier = record.metadata.get("api_key_id"), self.tiers.get(str(record.metadata.get("tier")))
        if key_id and tier is not None and record.total_tokens > 0:
            charge = self.limits.charge_tokens(str(key_id), tier.tokens_per_minute, record.total_tokens)
            self._tasks.start(charge, f"tokens of run {record.run_id}")

    async def drain(self) -> None:
        """Wait until every charge made so far is counted (at shutdown, and in tests)."""
        await self._tasks.drain()
