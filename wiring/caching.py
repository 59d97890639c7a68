"""The response cache from settings: the door's switch (tiers, TTL, shared or per key, whether a
request may opt in) and the ladders' cache, its answers in Redis when replicas share it
(``REDIS_URL``), else in a SQLite file; hits recorded through the monitoring's call listeners and
counted in its metrics."""

from __future__ import annotations

from dataclasses import dataclass

from caching.answer_store import AnswerStore
from caching.cache_switch import CacheSwitch
from caching.response_cache import ResponseCache
from caching.sqlite_store import SqliteAnswerStore
from settings import Settings
from shared_state.answer_store import RedisAnswerStore
from wiring.monitoring import Monitoring
from wiring.shared_state import SharedState


@dataclass
class Caching:
    switch: CacheSwitch  # the doors': which requests are cached, and how
    answers: ResponseCache  # the ladders'

    async def close(self) -> None:
        await self.answers.close()


def build_caching(settings: Settings, monitoring: Monitoring, shared: SharedState) -> Caching:
    store: AnswerStore = (
        RedisAnswerStore(shared.link) if shared.link is not None else SqliteAnswerStore(settings.cache_db_path)
    )
    answers = ResponseCache(store, publish=monitoring.publish, observe=monitoring.metrics.observe_cache)
    switch = CacheSwitch(
        tiers=frozenset(settings.cache_tiers),
        ttl_s=settings.cache_ttl_s,
        shared=settings.cache_shared,
        opt_in=settings.cache_requests,
    )
    return Caching(switch, answers)
