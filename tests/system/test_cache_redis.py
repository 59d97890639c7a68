"""The response cache in a real Redis (``REDIS_URL``): two apps, as two replicas, answer from one
cache, the cache's clock decides expiry, and while Redis is away a lookup is a miss (a fresh
answer, never an error) until it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from settings import Settings
from shared_state.answer_store import PREFIX
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.clock import FakeClock
from tests.helpers.processes import RedisServer
from tests.helpers.provider_double import ProviderDouble
from wiring.shared_state import SharedState

NOW = 1_800_000_000.0
QUESTION = {"input": {"question": "What is DNS?"}}


def cached_settings(double: ProviderDouble, tmp_path: Path, url: str, **more: Any) -> Settings:
    return settings_for(
        double,
        redis_url=url,
        cache_tiers=["enterprise"],
        cache_ttl_s=120,
        cache_db_path=tmp_path / "cache.sqlite3",
        policy_prompt_styles="00-24=default",
        **more,
    )


async def ask(app: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        answer = await http.post("/chat/invoke", json=QUESTION)
    assert answer.status_code == 200, answer.text
    await app.state.caching.answers.drain()
    return answer


@pytest.fixture
async def closing() -> AsyncIterator[list[Any]]:
    """Apps and shared states to close at the end: the caches first, then the Redis links."""
    things: list[Any] = []
    yield things
    for thing in things:
        if isinstance(thing, SharedState):
            await thing.close()
        else:
            await thing.state.caching.close()


async def test_replicas_answer_from_one_cache_in_redis(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path, redis_url: str, closing: list[Any]
) -> None:
    settings = cached_settings(double, tmp_path, redis_url)
    one, other = SharedState.from_settings(settings), SharedState.from_settings(settings)
    first_app, other_app = make_app(settings, shared=one), make_app(settings, shared=other)
    closing.extend([first_app, other_app, one, other])
    clock = FakeClock(NOW)  # the replicas' clocks agree
    first_app.state.caching.answers.clock = other_app.state.caching.answers.clock = clock

    made = await ask(first_app)
    served = await ask(other_app)
    direct = redis.Redis.from_url(redis_url)
    kept = direct.keys(PREFIX + "*")
    ttl = direct.ttl(kept[0]) if kept else None
    direct.close()
    clock.now += 121
    expired = await ask(other_app)

    assert (made.headers["x-cache"], served.headers["x-cache"]) == ("miss", "hit")
    assert served.json()["output"] == made.json()["output"]
    assert len(kept) == 1 and ttl is not None and 0 < ttl <= 120, "Redis drops it at the TTL too"
    assert expired.headers["x-cache"] == "miss", "past the TTL by the cache's clock"
    assert len(double.served) == 2
    assert not (tmp_path / "cache.sqlite3").exists(), "with Redis, no SQLite file"


async def test_while_redis_is_away_the_cache_misses_and_answers_come_fresh(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path, closing: list[Any]
) -> None:
    server = RedisServer()
    server.start()
    try:
        settings = cached_settings(double, tmp_path, server.url, redis_retry_s=0.05)
        shared = SharedState.from_settings(settings)
        app = make_app(settings, shared=shared)
        closing.extend([app, shared])
        before = [(await ask(app)).headers["x-cache"] for _ in range(2)]
        server.kill()
        away = [(await ask(app)).headers["x-cache"] for _ in range(2)]
        server.start()
        deadline = time.monotonic() + 10
        while shared.link is not None and not shared.link.healthy:
            assert time.monotonic() < deadline, "the link did not see Redis come back"
            await asyncio.sleep(0.05)  # the link's watcher pings on this loop
        back = [(await ask(app)).headers["x-cache"] for _ in range(2)]
    finally:
        server.kill()

    assert before == ["miss", "hit"]
    assert away == ["miss", "miss"], "nothing to read, nothing kept, and no error"
    assert back == ["miss", "hit"], "the restarted Redis (no persistence) was empty; shared again"
    assert len(double.served) == 1 + 2 + 1
