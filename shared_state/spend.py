"""``RedisSpendLedger``: cumulative spend counted by every replica in one Redis key.

The total counts from when the key was created (delete ``llm-server:spend:usd`` to start again).
While Redis is away, spend is counted here and the total reported is the last shared total plus
what this replica spent since; that spend is added to Redis when it returns, so none is lost. A
Redis that returns from an outage without the key lost its data (restarted without persistence):
the first replica to add again puts back the last total it saw, so the spend recorded before the
outage is not lost either.
"""

from __future__ import annotations

from decimal import Decimal

from shared_state.link import Down, RedisLink

KEY = "llm-server:spend:usd"

_ADD = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[2]) end
return redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
"""


class RedisSpendLedger:
    def __init__(self, link: RedisLink):
        self.link = link
        self._shared = Decimal(0)  # the total Redis last reported
        self._unsynced = Decimal(0)  # spent here and not yet added to Redis
        self._outages_seen = link.outages  # the link's outages as of the last add Redis took
        self._add = link.client.register_script(_ADD)

    async def add(self, usd: Decimal) -> Decimal:
        self._unsynced += usd
        amount = self._unsynced
        outages = self.link.outages
        # Only after an outage: a key missing otherwise was deleted on purpose, to start again.
        restore = self._shared if outages != self._outages_seen else Decimal(0)
        total = await self.link.attempt(lambda r: self._add(keys=[KEY], args=[f"{amount:f}", f"{restore:f}"], client=r))
        if isinstance(total, Down):
            return self._shared + self._unsynced
        self._outages_seen = outages
        self._unsynced -= amount
        self._shared = Decimal(str(total))
        return self._shared + self._unsynced
