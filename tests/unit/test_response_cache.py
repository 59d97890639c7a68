"""The response cache's parts on their own: the switch and the client's Cache-Control, how an
answer is kept and given back, the SQLite store with its TTL, the cache's hit record, and how every
consumer of call records treats a hit (no model was called: nothing to learn, alert or bill)."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from caching.answer_store import StoredAnswer
from caching.cache_switch import CacheControl, CacheDirective, CacheSwitch
from caching.cached_answer import CachedAnswer
from caching.response_cache import ResponseCache
from caching.sqlite_store import SqliteAnswerStore
from chains.serving_report import RunUsage
from dashboard.snapshot import snapshot
from errors import ConfigurationError
from monitoring import alert_rules
from monitoring.metrics_exporter import MetricsExporter
from monitoring.stats import summarize
from policy.adaptive_router import AdaptiveRouter, RewardModel
from policy.bandit import ModelBandit
from policy.keys import ApiKeyRing, Caller
from policy.limits import CallerLimits, Reservations, TokenMeter, _key, _Window
from policy.tiers import default_tiers
from resilience.balancing import Balancer
from resilience.latency import LatencyBoard
from settings import Settings
from tests.helpers.clock import FakeClock
from tests.helpers.records import T0, call
from vocabulary import Outcome
from vocabulary.records import CallRecord
from vocabulary.run_metadata import (
    API_KEY_ID,
    CACHE_HIT,
    DEPLOYMENT,
    DOOR,
    REQUEST_ID,
    RESPONSE_CACHE,
    ROOT_RUN_ID,
    ROUTE,
    ROUTING,
    TIER,
)

NOW = 1_800_000_000.0


def hit(**fields: Any) -> CallRecord:
    """A hit's record as the cache makes it: no tokens, no cost, what it saved in its metadata."""
    values: dict[str, Any] = dict(
        outcome=Outcome.CACHED, provider="cache", rung=None, input_tokens=0, output_tokens=0,
        cost_usd=Decimal(0), first_token_s=None, duration_s=0.0004, prompt_chars=50_000,
        metadata={CACHE_HIT: {"saved_usd": "0.0002", "age_s": 12.0}},
    )  # fmt: skip
    values.update(fields)
    return call("gpt-4o-mini", **values)


# -- the switch ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl()),
        ("max-age=60", CacheControl(max_age_s=60)),
        ("No-Cache", CacheControl(no_cache=True)),
        ("no-store, max-age=5", CacheControl(max_age_s=5, no_store=True)),
        ('max-age="30", private', CacheControl(max_age_s=30)),
        ("max-age=-1", CacheControl()),
        ("max-age=soon", CacheControl()),
    ],
)
def test_cache_control_reads_the_request_directives(header: str | None, expected: CacheControl) -> None:
    assert CacheControl.parse(header) == expected


SWITCH = CacheSwitch(tiers={"pro"}, ttl_s=600.0)


def decide(switch: CacheSwitch = SWITCH, **asked: Any) -> CacheDirective | None:
    request: dict[str, Any] = {"tier": "pro", "key_id": "k1", "key_cache": None, "cache_control": None}
    request.update(asked)
    return switch.decide(**request)


def test_a_tier_switched_on_caches_by_key_for_the_ttl() -> None:
    assert decide() == CacheDirective(scope="k1", max_age_s=600.0, ttl_s=600.0)
    assert decide(tier="free") is None, "a tier not switched on is not cached"


def test_a_keys_switch_overrides_its_tiers() -> None:
    assert decide(tier="free", key_cache=True) is not None
    assert decide(key_cache=False) is None
    assert decide(key_cache=False, cache_control="max-age=60") is None, "a key switched off stays off"


def test_a_request_opts_in_with_max_age_capped_at_the_ttl() -> None:
    asked = decide(tier="free", cache_control="max-age=60")
    longer = decide(tier="free", cache_control="max-age=86400")
    closed = decide(CacheSwitch(tiers=set(), ttl_s=600.0, opt_in=False), cache_control="max-age=60")

    assert asked is not None and asked.max_age_s == 60.0 and asked.ttl_s == 600.0
    assert longer is not None and longer.max_age_s == 600.0
    assert closed is None, "opting in is the operator's to allow"


def test_no_cache_and_no_store_ask_for_a_fresh_answer_only_where_caching_is_on() -> None:
    fresh = decide(cache_control="no-cache")
    unkept = decide(cache_control="no-store")

    assert fresh is not None and (fresh.lookup, fresh.store) == (False, True)
    assert unkept is not None and (unkept.lookup, unkept.store) == (False, False)
    assert decide(tier="free", cache_control="no-cache") is None


def test_the_scope_is_the_key_or_shared_or_open() -> None:
    shared = CacheSwitch(tiers={"pro"}, ttl_s=600.0, shared=True)

    assert decide(key_id="k2").scope == "k2"  # type: ignore[union-attr]
    assert decide(shared).scope == "shared"  # type: ignore[union-attr]
    assert decide(key_id=None).scope == "open"  # type: ignore[union-attr]


def test_a_directive_round_trips_through_the_metadata_and_nothing_else_passes_for_one() -> None:
    directive = CacheDirective(scope="k1", max_age_s=60.0, ttl_s=600.0, store=False, reserved_tokens=12)

    assert CacheDirective.from_metadata(directive.as_metadata()) == directive
    assert CacheDirective.from_metadata(None) is None
    assert CacheDirective.from_metadata({"scope": "k1"}) is None
    assert CacheDirective.from_metadata({"scope": "k1", "max_age_s": "a", "ttl_s": 1}) is None


def test_the_keys_file_switches_a_key_and_refuses_what_is_not_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    tiers = default_tiers()
    path.write_text(
        '[[keys]]\nuser = "a"\ntier = "pro"\nkey = "lsk_0123456789abcdef-a"\ncache = true\n\n'
        '[[keys]]\nuser = "b"\ntier = "pro"\nkey = "lsk_0123456789abcdef-b"\n'
    )
    ring = ApiKeyRing.from_file(path, tiers)
    a, b = ring.authenticate("lsk_0123456789abcdef-a"), ring.authenticate("lsk_0123456789abcdef-b")
    path.write_text('[[keys]]\nuser = "a"\ntier = "pro"\nkey = "lsk_0123456789abcdef-a"\ncache = "yes"\n')

    assert a is not None and a.cache is True
    assert b is not None and b.cache is None, "left out: its tier decides"
    with pytest.raises(ConfigurationError, match="cache"):
        ApiKeyRing.from_file(path, tiers)


def test_the_settings_refuse_a_cache_tier_that_does_not_exist() -> None:
    assert Settings(_env_file=None, cache_tiers="pro, enterprise").cache_tiers == ["pro", "enterprise"]
    with pytest.raises(ValueError, match="cache_tiers: unknown tiers"):
        Settings(_env_file=None, cache_tiers="gold")


# -- a kept answer ---------------------------------------------------------------------------------


def test_a_message_is_kept_without_its_usage_and_given_back_whole_or_word_by_word() -> None:
    message = AIMessage(
        "A resolver  asks\nname servers.",
        response_metadata={"finish_reason": "stop", "model_name": "gpt-4o-mini", "logprobs": {"x": 1}},
        usage_metadata={"input_tokens": 5, "output_tokens": 6, "total_tokens": 11},
    )
    kept = CachedAnswer.of(message, model="gpt-4o-mini", alternative="openai", cost=Decimal("0.0001"))
    assert kept is not None
    back = CachedAnswer.from_json(kept.to_json())

    assert back == kept
    output = back.output()
    assert isinstance(output, AIMessage) and output.text == message.text and output.usage_metadata is None
    assert output.response_metadata == {"finish_reason": "stop", "model_name": "gpt-4o-mini"}
    chunks = back.chunks()
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert [c.text for c in chunks] == ["A ", "resolver  ", "asks\n", "name ", "servers."]
    assert chunks[-1].response_metadata["finish_reason"] == "stop"
    assert not chunks[0].response_metadata


def test_text_is_kept_as_text() -> None:
    kept = CachedAnswer.of("Two words", model="m", alternative="local", cost=None)

    assert kept is not None and kept.output() == "Two words" and kept.chunks() == ["Two ", "words"]
    assert CachedAnswer.from_json(kept.to_json()) == kept


def test_a_streamed_answer_is_kept_as_the_message_it_adds_up_to() -> None:
    final = AIMessageChunk(content="Hello ") + AIMessageChunk(
        content="there", response_metadata={"finish_reason": "stop"}
    )

    kept = CachedAnswer.of(final, model="m", alternative="openai", cost=Decimal(0))

    assert kept is not None and kept.output().text == "Hello there"


@pytest.mark.parametrize(
    "output",
    [
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Seoul"}, "id": "call_1"}]),
        AIMessageChunk(content="", tool_call_chunks=[{"name": "weather", "args": "{", "id": "call_1", "index": 0}]),
        AIMessage(""),
        "",
        HumanMessage("not an answer"),
        {"structured": True},
    ],
    ids=["tool-calls", "tool-call-chunks", "empty-message", "empty-text", "not-ai", "not-a-message"],
)
def test_what_is_not_kept(output: Any) -> None:
    assert CachedAnswer.of(output, model="m", alternative="openai", cost=None) is None


def test_a_row_it_cannot_read_is_no_answer() -> None:
    assert CachedAnswer.from_json("{") is None
    assert CachedAnswer.from_json('{"kind": "image", "content": "", "model": "m", "alternative": "a"}') is None


# -- the SQLite store ------------------------------------------------------------------------------


async def test_the_sqlite_store_serves_an_answer_until_it_expires_and_prunes_expired_rows(tmp_path: Path) -> None:
    store = SqliteAnswerStore(tmp_path / "cache.sqlite3", prune_every_s=60.0)
    try:
        await store.put("a", StoredAnswer("first", NOW, NOW + 30))
        await store.put("a", StoredAnswer("second", NOW, NOW + 30))
        await store.put("b", StoredAnswer("other", NOW, NOW + 100))

        assert (await store.get("a", NOW + 29.9)) == StoredAnswer("second", NOW, NOW + 30), "replaced"
        assert await store.get("a", NOW + 30) is None, "expired"
        assert await store.get("missing", NOW) is None
        assert await store.count() == 2
        await store.put("c", StoredAnswer("later", NOW + 59, NOW + 200))
        assert await store.count() == 3, "no prune before prune_every_s"
        await store.put("c", StoredAnswer("later", NOW + 61, NOW + 200))
        assert await store.count() == 2, "the expired row is gone"
    finally:
        await store.close()
    reopened = SqliteAnswerStore(tmp_path / "cache.sqlite3")
    try:
        assert (await reopened.get("b", NOW)) == StoredAnswer("other", NOW, NOW + 100), "kept in the file"
    finally:
        await reopened.close()


async def test_a_store_that_cannot_open_its_file_misses_and_drops_answers_without_failing(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    store = SqliteAnswerStore(blocked / "cache.sqlite3")
    try:
        await store.put("a", StoredAnswer("x", NOW, NOW + 30))
        assert await store.get("a", NOW) is None
    finally:
        await store.close()


# -- the cache -------------------------------------------------------------------------------------


class Recorded:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.lookups: list[tuple[str, str, float]] = []

    def publish(self, record: CallRecord) -> None:
        self.records.append(record)

    def observe(self, result: str, route: str, saved: float) -> None:
        self.lookups.append((result, route, saved))


def run_config(directive: CacheDirective | None, **metadata: Any) -> dict[str, Any]:
    stamps: dict[str, Any] = {
        ROUTE: "chat", DOOR: "langserve", TIER: "pro", REQUEST_ID: "q1", ROOT_RUN_ID: "root-1", API_KEY_ID: "k1",
        "__useragent": "test",
    }  # fmt: skip
    if directive is not None:
        stamps[RESPONSE_CACHE] = directive.as_metadata()
    stamps.update(metadata)
    return {"metadata": stamps, "configurable": {"llm_temperature": 0.4}, "tags": ["t1"]}


@pytest.fixture
async def cache(tmp_path: Path) -> Any:
    seen = Recorded()
    made = ResponseCache(
        SqliteAnswerStore(tmp_path / "cache.sqlite3"),
        publish=seen.publish,
        observe=seen.observe,
        clock=FakeClock(NOW),
    )
    made.seen = seen  # type: ignore[attr-defined]
    yield made
    await made.close()


DIRECTIVE = CacheDirective(scope="k1", max_age_s=600.0, ttl_s=600.0, reserved_tokens=9)
ASKED = [HumanMessage("What is DNS?")]


async def test_without_a_directive_there_is_no_lookup(cache: ResponseCache, tmp_path: Path) -> None:
    assert await cache.lookup("chat:openai", ASKED, run_config(None), {}) is None
    assert await cache.lookup("chat:openai", {"question": "a dict"}, run_config(DIRECTIVE), {}) is None
    assert not (tmp_path / "cache.sqlite3").exists(), "the file is made only once something is cached"


async def test_a_miss_then_a_hit_with_its_record(cache: ResponseCache) -> None:
    seen: Recorded = cache.seen  # type: ignore[attr-defined]
    first = await cache.lookup("chat:openai", ASKED, run_config(DIRECTIVE), {"max_tokens": 20})
    assert first is not None and first.result == "miss" and first.store
    answer = AIMessage("Names to addresses.", response_metadata={"finish_reason": "stop"})
    cache.remember(first, answer, model="gpt-4o-mini", alternative="openai", cost=Decimal("0.0002"))
    await cache.drain()
    cache.clock.now += 12  # type: ignore[attr-defined]

    second = await cache.lookup("chat:openai", ASKED, run_config(DIRECTIVE), {"max_tokens": 20})

    assert second is not None and second.result == "hit" and not second.store
    assert (second.model, second.alternative) == ("gpt-4o-mini", "openai")
    assert second.output.text == "Names to addresses."
    assert "".join(c.text for c in second.chunks()) == "Names to addresses."
    assert seen.lookups == [("miss", "chat", 0.0), ("hit", "chat", 0.0002)]
    (record,) = seen.records
    assert (record.outcome, record.provider, record.model, record.alternative) == (
        Outcome.CACHED, "cache", "gpt-4o-mini", "openai",
    )  # fmt: skip
    assert (record.input_tokens, record.output_tokens, record.cost_usd) == (0, 0, Decimal(0))
    assert (record.request_id, record.root_run_id, record.route) == ("q1", "root-1", "chat")
    assert record.ladder == "chat:openai"
    assert record.started_at.timestamp() == NOW + 12 and record.tags == ["t1"]
    assert record.metadata[CACHE_HIT] == {"saved_usd": "0.0002", "age_s": 12.0}
    assert record.metadata[API_KEY_ID] == "k1" and record.metadata[RESPONSE_CACHE]["reserved_tokens"] == 9
    assert "__useragent" not in record.metadata and REQUEST_ID not in record.metadata
    assert (record.prompt_chars, record.answer_chars) == (len("What is DNS?"), len("Names to addresses."))


async def test_an_answer_older_than_the_request_takes_is_a_miss(cache: ResponseCache) -> None:
    first = await cache.lookup("fallback", ASKED, run_config(DIRECTIVE), {})
    cache.remember(first, "An answer.", model="m", alternative="local", cost=None)
    await cache.drain()
    cache.clock.now += 100  # type: ignore[attr-defined]
    young = CacheDirective(scope="k1", max_age_s=60.0, ttl_s=600.0)

    later = await cache.lookup("fallback", ASKED, run_config(young), {})
    default = await cache.lookup("fallback", ASKED, run_config(DIRECTIVE), {})

    assert later is not None and later.result == "miss"
    assert default is not None and default.result == "hit" and default.output == "An answer."
    assert cache.seen.records[0].metadata[CACHE_HIT]["saved_usd"] is None  # type: ignore[attr-defined]


async def test_a_bypass_looks_nothing_up_and_no_store_keeps_nothing(cache: ResponseCache) -> None:
    fresh = CacheDirective(scope="k1", max_age_s=600.0, ttl_s=600.0, lookup=False)
    unkept = CacheDirective(scope="k1", max_age_s=600.0, ttl_s=600.0, lookup=False, store=False)

    skipped = await cache.lookup("fallback", ASKED, run_config(unkept), {})
    cache.remember(skipped, "Not kept.", model="m", alternative="local", cost=None)
    await cache.drain()
    after_no_store = await cache.lookup("fallback", ASKED, run_config(DIRECTIVE), {})
    bypassed = await cache.lookup("fallback", ASKED, run_config(fresh), {})
    cache.remember(bypassed, "Kept.", model="m", alternative="local", cost=None)
    await cache.drain()
    after_no_cache = await cache.lookup("fallback", ASKED, run_config(DIRECTIVE), {})

    assert skipped is not None and skipped.result == "bypass" and not skipped.store
    assert after_no_store is not None and after_no_store.result == "miss"
    assert bypassed is not None and bypassed.result == "bypass" and bypassed.store
    assert after_no_cache is not None and after_no_cache.output == "Kept."
    assert [r for r, _, _ in cache.seen.lookups] == ["bypass", "miss", "bypass", "hit"]  # type: ignore[attr-defined]


# -- what every consumer of records makes of a hit -------------------------------------------------


def test_stats_count_hits_apart_from_model_calls_with_what_they_saved() -> None:
    records = [call("gpt-4o-mini", duration_s=2.0), hit(), hit()]

    totals = summarize(records)["totals"]

    assert totals["calls"] == 1 and totals["errors"] == 0 and totals["error_rate"] == 0.0
    assert totals["latency_s"]["p50"] == 2.0, "a hit's instant answer is no model's latency"
    assert totals["cache_hits"] == 2 and Decimal(totals["cache_saved_usd"]) == Decimal("0.0004")
    assert totals["cost_usd"] == "0.001"


def test_the_dashboard_counts_no_hit_as_a_call_or_a_failure() -> None:
    records = [call("gpt-4o-mini", started_at=T0), hit(started_at=T0), hit(started_at=T0)]

    shown = snapshot(records, now=T0.replace(minute=1), window_s=300)

    assert shown["causes"] == {}
    assert sum(point["calls"] for point in shown["timeline"]) == 1
    assert sum(point["cache_hits"] for point in shown["timeline"]) == 2


def test_no_alert_rule_fires_or_resolves_on_a_hit() -> None:
    rules: list[alert_rules.AlertRule] = [
        alert_rules.long_prompt(1000),
        alert_rules.slow_response(0.0001),
        alert_rules.slow_first_token(0.0),
        alert_rules.LLMError(),
        alert_rules.FallbackUsed(),
        alert_rules.UnpricedModel(),
    ]

    assert [signal for rule in rules for signal in rule.evaluate(hit(cost_usd=None), 0.0)] == []


def test_hits_do_not_water_down_a_models_error_rate() -> None:
    rule = alert_rules.ErrorRate(0.5, 60.0, 4)
    for _ in range(20):
        rule.evaluate(hit(), 1.0)
    signals = [s for r in (call(outcome="error", cause="server_error"),) * 4 for s in rule.evaluate(r, 2.0)]

    assert signals[-1].firing and "4 of the last 4" in signals[-1].message


def test_latencies_are_not_learned_from_a_hit() -> None:
    latency = LatencyBoard(weight=1.0)
    balancer = Balancer("lowest_latency")
    stamped = {DEPLOYMENT: "openai:gpt-4o-mini"}
    latency.observe(call("gpt-4o-mini", duration_s=3.0))
    balancer.observe(call("gpt-4o-mini", first_token_s=0.5, metadata=stamped))

    latency.observe(hit(duration_s=0.0004))
    balancer.observe(hit(first_token_s=0.0004, metadata=stamped))

    assert latency.latency_of("gpt-4o-mini") == 3.0
    assert balancer._first_token["openai:gpt-4o-mini"] == 0.5


async def test_the_router_learns_nothing_from_a_hit_but_its_answer_can_be_rated() -> None:
    router = AdaptiveRouter(ModelBandit(exploration=0.0), ["openai", "local"])
    routing = {ROUTING: {"question_type": "factual"}}
    router.observe(call("gpt-4o-mini", alternative="local", metadata=routing))
    learned = router.bandit.snapshot()

    router.observe(hit(root_run_id="cached-run", metadata=routing))

    assert RewardModel().of_call(hit()) is None
    assert router.bandit.snapshot() == learned, "no arm moved"
    rated = await router.feedback("cached-run", 1.0)
    assert rated["alternative"] == "openai"


def test_the_metrics_count_no_hit_as_an_llm_call() -> None:
    metrics = MetricsExporter()

    metrics.observe(hit())
    metrics.observe_cache("hit", "chat", 0.0002)

    text = metrics.render().decode()
    assert not [line for line in text.splitlines() if line.startswith(("llm_calls_total{", "llm_call_duration"))]
    assert 'llm_cache_lookups_total{result="hit",route="chat"} 1.0' in text
    assert 'llm_cache_saved_usd_total{route="chat"} 0.0002' in text


def test_a_requests_usage_counts_no_call_for_a_hit() -> None:
    usage = RunUsage()
    usage.add(hit())

    assert usage.as_dict() == {
        "calls": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cached_input_tokens": 0,
        "reasoning_tokens": 0, "cost_usd": "0",
    }  # fmt: skip


# -- token limits ----------------------------------------------------------------------------------


def test_a_reservation_is_released_up_to_what_is_left() -> None:
    clock = FakeClock(100.0)
    reservations = Reservations(clock)
    reservations.add("k", "q", 30)

    assert reservations.release("k", "q", 10) == (10, 100.0)
    assert reservations.release("k", "q", 50) == (20, 100.0)
    assert reservations.release("k", "q", 5) == (0, 0.0)
    assert reservations.release("k", None, 5) == (0, 0.0)
    assert len(reservations) == 0


async def test_a_hit_gives_its_reserved_tokens_back_to_the_window_they_were_counted_in() -> None:
    start = math.floor(NOW / 60) * 60 + 59.0  # a second before the window ends
    clock = FakeClock(start)
    limits = CallerLimits(clock=clock)
    tiers = default_tiers()
    caller = Caller("bob", "pro", tiers["pro"], key_id="k1")
    meter = TokenMeter(limits, tiers)
    await limits.admit(caller, tokens=40, request_id="q1")
    counted = _key("tokens", "k1", _Window.at(start).index)
    clock.now += 2  # the hit's record comes in the next window

    meter(hit(request_id="q1", metadata={API_KEY_ID: "k1", TIER: "pro", RESPONSE_CACHE: {"reserved_tokens": 25}}))
    await meter.drain()

    assert await limits._local.get(counted) == 15, "the hit's share is given back, the rest stays"
    meter(hit(request_id="q1", metadata={API_KEY_ID: "k1", TIER: "pro", RESPONSE_CACHE: {"reserved_tokens": 25}}))
    await meter.drain()
    assert await limits._local.get(counted) == 0, "never more than was reserved"


async def test_a_hit_without_a_key_or_a_reservation_changes_nothing() -> None:
    limits = CallerLimits(clock=FakeClock(NOW))
    meter = TokenMeter(limits, default_tiers())

    meter(hit(request_id="q1", metadata={RESPONSE_CACHE: {"reserved_tokens": 25}}))
    meter(hit(request_id="q2", metadata={API_KEY_ID: "k1", TIER: "pro"}))
    await meter.drain()

    assert len(limits.reservations) == 0
