"""``RedisLink``: the one Redis client of a process, and whether Redis answers now.

Every shared operation goes through ``attempt``: with Redis healthy it runs the operation under a
short timeout; the first failure marks Redis lost (reported through ``on_health``) and from then
on operations return ``DOWN`` at once, so requests never wait on a dead Redis, and callers use
their local state. A watcher task pings every ``retry_s`` and reports the recovery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

logger = logging.getLogger("llm_server.shared_state")

T = TypeVar("T")


class Down:
    """The type of ``DOWN``."""

    def __repr__(self) -> str:
        return "DOWN"


DOWN: Final = Down()  # what ``attempt`` returns while Redis is away


def redacted(url: str) -> str:
    """The URL without its password, for logs and alerts."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


class RedisLink:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.25,
        retry_s: float = 2.0,
        on_health: Callable[[bool, str], None] | None = None,
    ):
        self.url = url
        self.where = redacted(url)
        self.timeout_s = timeout_s
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self.retry_s = retry_s
        self.on_health = on_health
        self.pools: list[redis.ConnectionPool] = [self.client.connection_pool]  # emptied on recovery
        self.healthy = True
        self.outages = 0  # how many times Redis was lost: who shares state can tell it may have restarted
        self.recovered = asyncio.Event()  # set each time Redis answers again after being lost
        self._watcher: asyncio.Task[None] | None = None

    async def attempt(self, operation: Callable[[redis.Redis], Awaitable[T]]) -> T | Down:
        """``operation`` on this link's client, or ``DOWN`` while Redis is away."""
        return await self.attempt_call(lambda: operation(self.client))

    async def attempt_call(self, call: Callable[[], Awaitable[T]]) -> T | Down:
        """``call`` (which talks to this Redis, through any client), or ``DOWN`` while Redis is away."""
        if not self.healthy:
            return DOWN
        for tries_left in (1, 0):
            try:
                return await call()
            except (TimeoutError, RedisError, OSError) as exc:
                # After a Redis restart the pool's idle connections are dead; the failed one is
                # dropped, so one more try on a fresh connection tells a restart from an outage.
                if not tries_left:
                    self.lost(exc)
        return DOWN

    def lost(self, exc: BaseException) -> None:
        """Redis failed: use local state until it answers."""
        if not self.healthy:
            return
        self.healthy = False
        self.outages += 1
        self.recovered.clear()
        reason = f"{type(exc).__name__}: {exc}".replace(self.url, self.where)[:200]
        logger.error("Redis at %s unreachable (%s): serving on this process's own state", self.where, reason)
        self._report(False, reason)
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="redis-watch")

    async def _watch(self) -> None:
        while not self.healthy:
            await asyncio.sleep(self.retry_s)
            try:
                await self.client.ping()
            except (TimeoutError, RedisError, OSError):
                continue
            self.healthy = True
            logger.warning("Redis at %s is back: sharing state again", self.where)
            self._report(True, "answering again")
            self.recovered.set()

    def _report(self, healthy: bool, detail: str) -> None:
        if self.on_health is not None:
            try:
                self.on_health(healthy, detail)
            except Exception:
                logger.exception("Redis health listener failed")

    def pool(self) -> redis.ConnectionPool:
        """A pool of raw (bytes) connections for a library that talks to the same Redis."""
        pool = redis.ConnectionPool.from_url(
            self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
        )
        self.pools.append(pool)
        return pool

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await self.client.aclose()
        for pool in self.pools[1:]:
            await pool.disconnect()
