"""``RedisCounters``: the per-key limit counters in Redis, so every replica counts against one
budget; ``CallerLimits`` counts in memory while Redis is away."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits.aio.storage import RedisStorage, Storage

from policy.limits import CountersAway
from shared_state.link import Down, RedisLink

T = TypeVar("T")


class RedisCounters:
    def __init__(self, link: RedisLink):
        self._link = link
        # ``connection_pool`` is a documented option the library types too narrowly.
        self._storage = RedisStorage(f"async+{link.url}", implementation="redispy", connection_pool=link.pool())  # type: ignore[arg-type]

    async def run(self, operation: Callable[[Storage], Awaitable[T]]) -> T:
        result = await self._link.attempt_call(lambda: operation(self._storage))
        if isinstance(result, Down):
            raise CountersAway
        return result
