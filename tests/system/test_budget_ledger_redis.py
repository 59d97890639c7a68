"""The Redis budget ledger on a real ``redis-server``: two replicas' ledgers taking holds at once
never pass a limit; while Redis is away a ledger counts on its own and hands what it spent to Redis
when it returns; and a Redis that lost its data gets each bucket's spend back from the replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from policy.budget_ledger import Counted
from policy.budgets import Budget, window_of
from shared_state.budgets import RedisBudgetLedger
from shared_state.link import RedisLink
from tests.helpers.processes import RedisServer

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LINE = Counted("keys:alice", 1_000, window_of(Budget(name="keys", scope="key", limit_usd=1), NOW, ZoneInfo("UTC")))


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


async def linked(url: str) -> RedisLink:
    return RedisLink(url, timeout_s=0.5, retry_s=0.05)


async def test_two_ledgers_holding_at_once_never_pass_the_limit(redis_url: str) -> None:
    links = [await linked(redis_url), await linked(redis_url)]
    ledgers = [RedisBudgetLedger(link) for link in links]

    async def call(n: int) -> bool:
        ledger = ledgers[n % 2]
        hold = f"hold-{n}"
        reserved = await ledger.reserve([LINE], hold, 30, NOW.timestamp() + 60, NOW.timestamp())
        if reserved.refused is not None:
            return False
        await ledger.settle([LINE], hold, 30)
        return True

    ran = await asyncio.gather(*(call(n) for n in range(100)))
    standing = await ledgers[0].read([LINE], NOW.timestamp())
    for link in links:
        await link.close()

    assert sum(ran) == 33 and standing[0].spent == 990, "1000 holds 33 calls of 30"
    assert standing[0].held == 0


async def test_a_lapsed_hold_is_given_back(redis_url: str) -> None:
    link = await linked(redis_url)
    ledger = RedisBudgetLedger(link)
    await ledger.reserve([LINE], "dead-replica", 900, NOW.timestamp() + 60, NOW.timestamp())
    refused = await ledger.reserve([LINE], "next", 200, NOW.timestamp() + 60, NOW.timestamp())
    later = await ledger.reserve([LINE], "next", 200, NOW.timestamp() + 120, NOW.timestamp() + 61)
    await link.close()

    assert refused.refused == 0
    assert later.refused is None and later.standings[0].held == 0


async def test_spend_while_redis_is_away_reaches_it_when_it_returns(own_redis: RedisServer) -> None:
    link = await linked(own_redis.url)
    ledger = RedisBudgetLedger(link)
    await ledger.charge([LINE], 100)
    own_redis.kill()
    away = await ledger.reserve([LINE], "h", 50, NOW.timestamp() + 60, NOW.timestamp())
    await ledger.settle([LINE], "h", 40)
    seen_while_away = await ledger.read([LINE], NOW.timestamp())
    own_redis.start()  # empty: it kept nothing
    await asyncio.wait_for(link.recovered.wait(), 10)
    back = await ledger.read([LINE], NOW.timestamp())
    stored = redis.Redis.from_url(own_redis.url, decode_responses=True)
    keys = sorted(stored.keys("llm-server:budget:keys:alice:*"))
    await link.close()

    assert away.refused is None and seen_while_away[0].spent == 140, "counted here, over Redis's last total"
    assert back[0].spent == 140, "Redis has the spend from before the loss (floor) and from the outage"
    assert keys == [f"llm-server:budget:keys:alice:{kind}:2026-12" for kind in ("floor", "spent")], "a month"


async def test_a_redis_that_lost_its_data_gets_the_largest_view_back(redis_url: str) -> None:
    links = [await linked(redis_url), await linked(redis_url)]
    first, second = (RedisBudgetLedger(link) for link in links)
    await first.charge([LINE], 100)
    await second.charge([LINE], 50)  # second saw 150; first saw 100
    redis.Redis.from_url(redis_url).flushall()  # as a restart without persistence
    after = await first.read([LINE], NOW.timestamp())
    again = await second.read([LINE], NOW.timestamp())
    for link in links:
        await link.close()

    assert after[0].spent == 100, "the first ledger put back what it saw"
    assert again[0].spent == 150, "the second raised it to its larger view: the spend before the loss"
