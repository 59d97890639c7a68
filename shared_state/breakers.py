"""``BreakerSync``: one breaker state across replicas.

A replica whose breaker opens publishes it as ``breaker:<endpoint>`` (its reason, expiring when
the open period ends); before trying a rung every replica reads that key, so a breaker opened
through one replica skips its endpoint in all of them. A probe that succeeds deletes the key and
the others close too. Failure counting stays per replica: only the verdict is shared. With Redis
away each replica keeps its own breakers.
"""

from __future__ import annotations

import json

from redis.asyncio import Redis

from resilience.breaker import BreakerState, CircuitBreaker
from shared_state.link import DOWN, Down, RedisLink

PREFIX = "llm-server:breaker:"


async def _value_and_ttl(client: Redis, key: str) -> tuple[str | None, int]:
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.pttl(key)
        value, ttl_ms = await pipe.execute()
    return value, int(ttl_ms)


class BreakerSync:
    def __init__(self, link: RedisLink):
        self.link = link
        self._published: dict[str, int] = {}  # endpoint -> breaker.version last published

    async def pull(self, breaker: CircuitBreaker) -> None:
        """Take on the shared verdict for ``breaker``'s endpoint before it is asked to allow a call."""
        key = PREFIX + breaker.endpoint
        answer = await self.link.attempt(lambda r: _value_and_ttl(r, key))
        if isinstance(answer, Down):
            return
        value, ttl_ms = answer
        if value is not None and ttl_ms > 0:
            if breaker.state is BreakerState.CLOSED:
                breaker.open_from_elsewhere(json.loads(value)["reason"], ttl_ms / 1000)
                self._published[breaker.endpoint] = breaker.version
        elif breaker.opened_elsewhere:
            breaker.close_from_elsewhere()
            self._published[breaker.endpoint] = breaker.version

    async def push(self, breaker: CircuitBreaker) -> None:
        """Publish ``breaker``'s own change, if it made one since the last publication."""
        if self._published.get(breaker.endpoint, 0) == breaker.version:
            return
        key = PREFIX + breaker.endpoint
        state = breaker.state
        done: object = None  # half-open is each replica's own probing: nothing to publish
        if state is BreakerState.OPEN and not breaker.opened_elsewhere:
            ttl_ms = max(1, int(breaker.retry_in() * 1000))
            value = json.dumps({"reason": breaker.last_reason})
            done = await self.link.attempt(lambda r: r.set(key, value, px=ttl_ms))
        elif state is BreakerState.CLOSED:
            done = await self.link.attempt(lambda r: r.delete(key))
        if done is not DOWN:
            self._published[breaker.endpoint] = breaker.version
