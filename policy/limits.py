"""``CallerLimits``: each API key's requests, LLM tokens and feedback per minute.

- Each unit of each key is counted in one-minute windows, plain counters in a ``limits`` storage
  (in memory here; a shared one such as Redis for replicas, with memory while it is away). A
  minute's use is a sliding window counter: the current window's count plus the previous one's,
  weighted by how much of it the last 60 s still cover (two counters per key and unit, where a
  moving window would keep one entry per token). The weighted count is rounded up, as the
  real-valued counter compares: rounded down, one more request got in at each minute's turn.
- A request is admitted whole or not at all, before any model is called: a ``/batch`` of n
  inputs counts n requests, and the prompt tokens of its inputs (``estimate_prompt_tokens``) are
  reserved against the token budget. A refused request leaves no count behind.
- When a call ends, the tokens it used beyond its request's reservation are charged (nobody knows
  them sooner). What does not fit the current window is carried into the next windows, a
  minute's budget each: the overshoot is owed, not forgiven, and while a key owes it is refused
  with a Retry-After for when the debt is paid.
- Windows are numbered by this process's clock (``clock``, injected in tests), so replicas
  sharing Redis need clocks that agree to a second or so.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from limits.aio.storage import MemoryStorage, Storage

from errors import RateLimited
from monitoring.background_tasks import BackgroundTasks
from policy.keys import Caller
from policy.tiers import Tier
from vocabulary import Outcome
from vocabulary.records import CallRecord
from vocabulary.run_metadata import API_KEY_ID, CACHE_RESERVED_TOKENS, RESPONSE_CACHE, TIER

T = TypeVar("T")
Unit = Literal["requests", "tokens", "feedback"]

WINDOW_S = 60
# A debt is spread over at most this many windows ahead (an hour); the last one keeps whatever is
# left, which then weighs on the window after it and is forgiven past that.
MAX_CARRY_WINDOWS = 60
# Every prompt is the question inside a template, sent as a chat message: the shortest template
# ("Answer in one sentence: ") is about 6 tokens and a message's framing about 3.
PROMPT_OVERHEAD_TOKENS = 8
_READ_AHEAD = 8  # window counters read at once when working out a Retry-After


def estimate_prompt_tokens(question: str) -> int:
    """A cheap estimate of the prompt tokens of one question: its ASCII characters / 4, rounded up
    (English runs about 4 characters a token in GPT, Gemini and Llama tokenizers), one token for
    each other character (a Hangul syllable or a CJK character is about one), plus
    ``PROMPT_OVERHEAD_TOKENS`` for the template. Close for English and Korean, without a tokenizer
    per model; what the provider reports is charged on top when the call ends."""
    if question.isascii():  # the usual case, without a loop over the characters
        return math.ceil(len(question) / 4) + PROMPT_OVERHEAD_TOKENS
    ascii_chars = sum(1 for char in question if char.isascii())
    return math.ceil(ascii_chars / 4) + (len(question) - ascii_chars) + PROMPT_OVERHEAD_TOKENS


class Reservations:
    """Tokens reserved at admission and not yet covered by call records, by (key, request id).
    In memory: a request's calls run in the process that admitted it. Bounded: entries expire
    after ``ttl_s`` (longer than any request runs) and past ``capacity`` the oldest go; a dropped
    reservation was paid at admission, so the key is only charged its calls in full again."""

    def __init__(self, clock: Callable[[], float], *, capacity: int = 10_000, ttl_s: float = 900.0):
        self._clock = clock
        self._capacity = capacity
        self._ttl_s = ttl_s
        # (tokens left, expiry, when reserved: the window they were counted in)
        self._left: OrderedDict[tuple[str, str], tuple[int, float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._left)

    def add(self, key_id: str, request_id: str, tokens: int) -> None:
        now = self._clock()
        self._expire(now)
        # Added to, not replaced: a client that sends one request id twice is charged both.
        left, _, _ = self._left.pop((key_id, request_id), (0, now, now))
        self._left[(key_id, request_id)] = (left + tokens, now + self._ttl_s, now)
        while len(self._left) > self._capacity:
            self._left.popitem(last=False)

    def cover(self, key_id: str, request_id: str | None, tokens: int) -> int:
        """Take what is left of the request's reservation for a call that used ``tokens``; the
        tokens the reservation does not cover."""
        self._expire(self._clock())
        if request_id is None or (entry := self._left.get((key_id, request_id))) is None:
            return tokens
        left, expires, at = entry
        covered = min(left, tokens)
        if left > covered:
            self._left[(key_id, request_id)] = (left - covered, expires, at)
        else:
            del self._left[(key_id, request_id)]
        return tokens - covered

    def release(self, key_id: str, request_id: str | None, tokens: int) -> tuple[int, float]:
        """Take up to ``tokens`` of the request's reservation back, for a run that called no model:
        how many were taken, and when they were reserved."""
        self._expire(self._clock())
        if request_id is None or (entry := self._left.get((key_id, request_id))) is None:
            return 0, 0.0
        left, expires, at = entry
        taken = min(left, tokens)
        if left > taken:
            self._left[(key_id, request_id)] = (left - taken, expires, at)
        else:
            del self._left[(key_id, request_id)]
        return taken, at

    def _expire(self, now: float) -> None:
        while self._left:
            _, expires, _ = next(iter(self._left.values()))
            if expires > now:
                return
            self._left.popitem(last=False)


@dataclass(frozen=True)
class _Window:
    index: int
    elapsed: float  # the share of the window gone by, 0 to 1

    @classmethod
    def at(cls, now: float) -> _Window:
        index = math.floor(now / WINDOW_S)
        return cls(index, now / WINDOW_S - index)


@dataclass(frozen=True)
class _Shortfall:
    wait_s: float  # until the cost fits, if nothing else is counted meanwhile
    fit_now: int  # how much of the unit is left this minute
    owed: int  # tokens carried into later windows


class CountersAway(Exception):
    """The shared counters do not answer now: count in this process's memory meanwhile."""


class SharedCounters(Protocol):
    """Counters every replica sees (``shared_state.limits.RedisCounters``)."""

    async def run(self, operation: Callable[[Storage], Awaitable[T]]) -> T:
        """``operation`` on the shared storage, or raise ``CountersAway``."""
        ...


def _key(unit: Unit, key_id: str, window: int) -> str:
    return f"llm/{unit}/{key_id}/{window}"


def _expiry(ahead: int) -> int:
    """Seconds a counter ``ahead`` windows from now must live: until the window after it ends."""
    return (ahead + 2) * WINDOW_S + 1


class CallerLimits:
    def __init__(
        self,
        shared: SharedCounters | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        """``shared``: counters shared with other replicas (Redis). Without them, or while they
        are away, limits are counted in this process's memory. ``clock``: wall time in seconds;
        it numbers the windows."""
        self._local: Storage = MemoryStorage()
        self._shared = shared
        self._clock = clock
        self.reservations = Reservations(clock)

    async def _run(self, operation: Callable[[Storage], Awaitable[T]]) -> T:
        """``operation`` on the shared storage, or on memory while it is away. A Redis failure
        part-way runs the operation again, which can only count more, never less."""
        if self._shared is not None:
            try:
                return await self._shared.run(operation)
            except CountersAway:
                pass
        return await operation(self._local)

    async def admit(self, caller: Caller, *, requests: int = 1, tokens: int = 0, request_id: str | None = None) -> None:
        """Count ``requests`` and reserve ``tokens`` (estimated prompt tokens) against ``caller``'s
        key, all or none, or raise ``RateLimited`` with the wait. A request without tokens is still
        refused while the key has none left or owes some. Callers without a key (an open server)
        have no limits."""
        if caller.key_id is None:
            return
        key_id = caller.key_id
        refusal = await self._run(lambda storage: self._admit(storage, caller, key_id, requests, tokens))
        if refusal is not None:
            raise refusal
        if tokens > 0 and request_id is not None:
            self.reservations.add(key_id, request_id, tokens)

    async def admit_feedback(self, caller: Caller) -> None:
        """Count one ``POST /feedback`` against ``caller``'s key, or raise ``RateLimited``."""
        if caller.key_id is None:
            return
        key_id, allowed = caller.key_id, caller.tier.feedback_per_minute

        async def admit(storage: Storage) -> RateLimited | None:
            now = self._clock()
            if await self._take(storage, now, "feedback", key_id, allowed, 1):
                return None
            short = await self._shortfall(storage, now, "feedback", key_id, allowed, 1)
            return RateLimited(
                f"the {caller.tier_name} tier allows {allowed} feedback posts per minute per key, and this key "
                "has used them: wait for Retry-After",
                retry_after=short.wait_s,
                details={"limit": "feedback_per_minute", "allowed": allowed},
            )

        refusal = await self._run(admit)
        if refusal is not None:
            raise refusal

    async def _admit(
        self, storage: Storage, caller: Caller, key_id: str, requests: int, tokens: int
    ) -> RateLimited | None:
        now = self._clock()
        tier = caller.tier
        allowed = tier.requests_per_minute
        if requests > allowed or not await self._take(storage, now, "requests", key_id, allowed, requests):
            short = await self._shortfall(storage, now, "requests", key_id, allowed, requests)
            return self._too_many_requests(caller, requests, short)
        budget = tier.tokens_per_minute
        if tokens <= budget and await self._take(storage, now, "tokens", key_id, budget, tokens):
            return None
        await self._give_back(storage, now, "requests", key_id, requests)
        short = await self._shortfall(storage, now, "tokens", key_id, budget, tokens)
        return self._too_many_tokens(caller, tokens, short)

    async def _take(self, storage: Storage, now: float, unit: Unit, key_id: str, allowed: int, cost: int) -> bool:
        """Count ``cost`` in the current window if it fits this minute (and, for tokens, the key
        owes nothing): whether it did. ``cost`` 0 only checks that one is left."""
        window = _Window.at(now)
        reads = [storage.get(_key(unit, key_id, window.index - 1))]
        if unit == "tokens":
            reads.append(storage.get(_key(unit, key_id, window.index + 1)))
        previous, *carried = await asyncio.gather(*reads)
        if any(carried):
            return False
        weighed = math.ceil(previous * (1 - window.elapsed))
        current_key = _key(unit, key_id, window.index)
        if cost <= 0:
            return weighed + await storage.get(current_key) < allowed
        current = await storage.incr(current_key, _expiry(0), cost)
        if weighed + current > allowed:
            # Another request may have counted meanwhile: take ours back, so none goes over.
            await storage.incr(current_key, _expiry(0), -cost)
            return False
        return True

    async def _give_back(self, storage: Storage, now: float, unit: Unit, key_id: str, cost: int) -> None:
        if cost > 0:
            await storage.incr(_key(unit, key_id, _Window.at(now).index), _expiry(0), -cost)

    async def _shortfall(
        self, storage: Storage, now: float, unit: Unit, key_id: str, allowed: int, cost: int
    ) -> _Shortfall:
        window = _Window.at(now)
        cost = max(cost, 1)
        counts: list[int] = []  # counts[n]: the window ``window.index - 1 + n``

        async def count(index: int) -> int:
            while len(counts) <= index - window.index + 1:
                first = window.index - 1 + len(counts)
                keys = [_key(unit, key_id, first + n) for n in range(_READ_AHEAD)]
                counts.extend(await asyncio.gather(*(storage.get(key) for key in keys)))
            return counts[index - window.index + 1]

        previous, current = await count(window.index - 1), await count(window.index)
        fit_now = max(0, allowed - math.ceil(previous * (1 - window.elapsed)) - current)
        wait_s = float((MAX_CARRY_WINDOWS + 2) * WINDOW_S)
        if cost <= allowed:
            for index in range(window.index, window.index + MAX_CARRY_WINDOWS + 2):
                before, during = await count(index - 1), await count(index)
                if during + cost > allowed or (unit == "tokens" and await count(index + 1) > 0):
                    continue
                # The previous window's weight falls linearly across this one: when is there room
                # (by the admission's rounding up)? At that instant; a millisecond later for the float.
                share = 0.0 if before == 0 else max(0.0, 1 - (allowed - during - cost) / before)
                wait_s = (index + share) * WINDOW_S - now + 0.001
                break
        owed = sum(counts[2:]) if unit == "tokens" else 0
        return _Shortfall(wait_s=max(wait_s, 0.0), fit_now=fit_now, owed=owed)

    def _too_many_requests(self, caller: Caller, requests: int, short: _Shortfall) -> RateLimited:
        allowed = caller.tier.requests_per_minute
        tier = f"the {caller.tier_name} tier allows {allowed} requests per minute per key"
        details = {"limit": "requests_per_minute", "allowed": allowed}
        if requests > allowed:
            return RateLimited(
                f"{tier}, and a batch counts one request per input: this one has {requests}, so send at most "
                f"{allowed} at a time ({short.fit_now} fit now)",
                retry_after=WINDOW_S,
                details={**details, "requested": requests, "fit": short.fit_now},
            )
        if requests > 1:
            return RateLimited(
                f"{tier}, and a batch counts one request per input: this one has {requests} and {short.fit_now} "
                "fit now: wait for Retry-After, or send fewer",
                retry_after=short.wait_s,
                details={**details, "requested": requests, "fit": short.fit_now},
            )
        return RateLimited(
            f"{tier}, and this key has used them: wait for Retry-After", retry_after=short.wait_s, details=details
        )

    def _too_many_tokens(self, caller: Caller, tokens: int, short: _Shortfall) -> RateLimited:
        allowed = caller.tier.tokens_per_minute
        tier = f"the {caller.tier_name} tier allows {allowed} tokens per minute per key"
        details: dict[str, object] = {"limit": "tokens_per_minute", "allowed": allowed, "reserved": tokens}
        if tokens > allowed:
            return RateLimited(
                f"{tier}, and this request's prompt is estimated at {tokens} tokens: shorten it, or split the batch",
                retry_after=WINDOW_S,
                details=details,
            )
        if short.owed > 0:
            return RateLimited(
                f"{tier}; answers ran over it and this key owes {short.owed} more, carried into the next minutes: "
                "wait for Retry-After, when the debt is paid",
                retry_after=short.wait_s,
                details={**details, "owed": short.owed},
            )
        needs = f"this request's prompt is estimated at {tokens} tokens and" if tokens else "this key has"
        return RateLimited(
            f"{tier}; {needs} {short.fit_now} left: wait for Retry-After", retry_after=short.wait_s, details=details
        )

    async def charge_tokens(
        self, key_id: str, tokens_per_minute: int, tokens: int, *, request_id: str | None = None
    ) -> None:
        """Charge the tokens a call used beyond what its request reserved; what does not fit this
        window is carried into the next ones."""
        tokens = self.reservations.cover(key_id, request_id, tokens)
        if tokens > 0:
            await self._run(lambda storage: self._carry(storage, key_id, tokens_per_minute, tokens))

    async def refund(self, key_id: str, request_id: str | None, tokens: int) -> None:
        """Give back up to ``tokens`` of a request's reservation for a run that called no model (a
        response-cache hit): taken out of the window they were counted in, they no longer weigh on
        the key's tokens per minute."""
        taken, at = self.reservations.release(key_id, request_id, tokens)
        if taken > 0:
            await self._run(lambda storage: self._give_back(storage, at, "tokens", key_id, taken))

    async def _carry(self, storage: Storage, key_id: str, allowed: int, tokens: int) -> None:
        window = _Window.at(self._clock())
        previous = await storage.get(_key("tokens", key_id, window.index - 1))
        room_now = allowed - math.ceil(previous * (1 - window.elapsed))
        rest = tokens
        for ahead in range(MAX_CARRY_WINDOWS + 1):
            key = _key("tokens", key_id, window.index + ahead)
            if ahead == MAX_CARRY_WINDOWS:
                await storage.incr(key, _expiry(ahead), rest)
                return
            room = room_now if ahead == 0 else allowed
            if room <= 0 or await storage.get(key) >= room:
                continue
            count = await storage.incr(key, _expiry(ahead), rest)
            over = min(rest, count - room)
            if over <= 0:
                return
            # Only what fits stays in this window; the rest moves on to the next.
            await storage.incr(key, _expiry(ahead), -over)
            rest = over


class TokenMeter:
    """Call-record listener: charges each call's tokens, beyond its request's reservation, to the
    API key that made it; for a response-cache hit, gives the run's reservation back."""

    def __init__(self, limits: CallerLimits, tiers: Mapping[str, Tier]):
        self.limits = limits
        self.tiers = tiers
        self._tasks = BackgroundTasks()

    def __call__(self, record: CallRecord) -> None:
        key_id, tier = record.metadata.get(API_KEY_ID), self.tiers.get(str(record.metadata.get(TIER)))
        if key_id and record.outcome == Outcome.CACHED:
            reserved = _reserved_tokens(record)
            if reserved > 0:
                self._tasks.start(self.limits.refund(str(key_id), record.request_id, reserved), "cache hit's tokens")
            return
        if key_id and tier is not None and record.total_tokens > 0:
            charge = self.limits.charge_tokens(
                str(key_id), tier.tokens_per_minute, record.total_tokens, request_id=record.request_id
            )
            self._tasks.start(charge, f"tokens of run {record.run_id}")

    async def drain(self) -> None:
        """Wait until every charge made so far is counted (at shutdown, and in tests)."""
        await self._tasks.drain()


def _reserved_tokens(record: CallRecord) -> int:
    """The prompt tokens the run's admission reserved, as its door stamped them for the cache."""
    directive = record.metadata.get(RESPONSE_CACHE)
    value = directive.get(CACHE_RESERVED_TOKENS) if isinstance(directive, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
