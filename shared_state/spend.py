"""``RedisSpendLedger``: cumulative spend counted by every replica in one Redis key.

The total counts from when the key was created (delete ``llm-server:spend:usd`` to start again).
While Redis is away, spend is counted here and the total reported is the last shared total plus
what this replica spent since; that spend is added to Redis when it returns, so none is lost.
"""

from __future__ import annotations

from decimal import Decimal

from shared_state.link import Down, RedisLink

KEY = "llm-server:spend:usd"


class RedisSpendLedger:
    def __init__(self, link: RedisLink):
        self.link = link
        self._shared = Decimal(0)  # the total Redis last reported
        self._unsynced = Decimal(0)  # spent here and not yet added to Redis

    async def add(self, usd: Decimal) -> Decimal:
        self._unsynced += usd
        amount = self._unsynced
        total = await self.link.attempt(lambda r: r.incrbyfloat(KEY, float(amount)))
        if isinstance(total, Down):
            return self._shared + self._unsynced
        self._unsynced -= amount
        self._shared = Decimal(str(total))
        return self._shared + self._unsynced
