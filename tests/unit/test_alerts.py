"""Alert rules and the engine that turns their signals into one notification per incident."""

from __future__ import annotations

from decimal import Decimal

from monitoring import alert_rules
from monitoring.alert import Alert
from monitoring.alert_engine import AlertEngine
from monitoring.spend import MemorySpendLedger, SpendWatch
from tests.helpers.clock import FakeClock
from tests.helpers.records import call


def engine_with(*rules: alert_rules.AlertRule, cooldown_s: float = 60.0) -> tuple[AlertEngine, list[Alert], FakeClock]:
    sent: list[Alert] = []
    clock = FakeClock()
    return AlertEngine(list(rules), sent.append, cooldown_s=cooldown_s, clock=clock), sent, clock


def states(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.key, a.state) for a in alerts]


def test_a_sustained_slow_model_notifies_once_and_announces_its_end() -> None:
    engine, sent, clock = engine_with(alert_rules.slow_response(5.0))

    for duration in (6.0, 7.0, 9.0, 8.0):
        clock.now += 1
        engine.observe(call(duration_s=duration))
    clock.now += 1
    engine.observe(call(duration_s=1.0))

    assert states(sent) == [("slow_response:m", "firing"), ("slow_response:m", "resolved")]
    assert "6.00s" in sent[0].message
    assert engine.firing() == []


def test_each_model_is_its_own_incident() -> None:
    engine, sent, _ = engine_with(alert_rules.slow_response(5.0))

    engine.observe(call("a", duration_s=6.0))
    engine.observe(call("b", duration_s=6.0))

    assert states(sent) == [("slow_response:a", "firing"), ("slow_response:b", "firing")]
    assert [f["key"] for f in engine.firing()] == ["slow_response:a", "slow_response:b"]


def test_flapping_within_the_cooldown_stays_quiet() -> None:
    engine, sent, clock = engine_with(alert_rules.slow_response(5.0), cooldown_s=60.0)

    engine.observe(call(duration_s=6.0))
    clock.now = 10
    engine.observe(call(duration_s=1.0))
    clock.now = 20
    engine.observe(call(duration_s=6.0))  # fires again 10 s after the resolution: quiet
    clock.now = 30
    engine.observe(call(duration_s=1.0))  # the end of a quiet episode is quiet too
    clock.now = 100
    engine.observe(call(duration_s=6.0))  # past the cooldown: announced

    assert states(sent) == [
        ("slow_response:m", "firing"),
        ("slow_response:m", "resolved"),
        ("slow_response:m", "firing"),
    ]


def test_slow_first_token_and_long_prompt() -> None:
    engine, sent, _ = engine_with(alert_rules.slow_first_token(2.0), alert_rules.long_prompt(1000))

    engine.observe(call(first_token_s=3.0, prompt_chars=5000))

    assert states(sent) == [("slow_first_token:m", "firing"), ("long_prompt:m", "firing")]


def test_a_long_prompt_is_judged_against_the_window_of_the_deployment_that_ran_it() -> None:
    engine, sent, _ = engine_with(alert_rules.long_prompt(1000, share=0.8))

    # 5,000 characters are nothing to a 128k window; 3,400 tokens are 83% of a 4,096-token one.
    engine.observe(call(prompt_chars=5000, input_tokens=1200, metadata={"context_window": 128_000}))
    engine.observe(call("small", prompt_chars=500, input_tokens=3400, metadata={"context_window": 4096}))

    assert states(sent) == [("long_prompt:small", "firing")]
    assert "83% of its 4096-token window" in sent[0].message


def test_llm_error_fires_on_failure_and_resolves_on_success_but_ignores_unconfigured_providers() -> None:
    engine, sent, _ = engine_with(alert_rules.LLMError())

    engine.observe(call("x", outcome="error", cause="not_configured", error="no key"))
    engine.observe(call(outcome="error", cause="rate_limited", error="429"))
    engine.observe(call(outcome="error", cause="server_error", error="503"))
    engine.observe(call())

    assert states(sent) == [("llm_error:m", "firing"), ("llm_error:m", "resolved")]
    assert "rate_limited" in sent[0].message


def test_error_rate_over_a_window_with_a_minimum_of_calls() -> None:
    engine, sent, clock = engine_with(alert_rules.ErrorRate(rate=0.5, window_s=60, min_calls=4))

    for outcome in ("error", "error", "error"):
        engine.observe(call(outcome=outcome, cause="server_error"))
    assert sent == []  # three calls are too few to judge
    engine.observe(call())
    assert states(sent) == [("error_rate:m", "firing")]  # 3 of 4
    clock.now = 120  # the failures leave the window
    for _ in range(4):
        engine.observe(call())

    assert states(sent) == [("error_rate:m", "firing"), ("error_rate:m", "resolved")]
    assert sent[0].severity == "critical"


def test_error_rate_counts_calls_still_running_so_quick_failures_do_not_read_as_all_failing() -> None:
    running = {"m": 0}
    engine, sent, _ = engine_with(
        alert_rules.ErrorRate(rate=0.5, window_s=60, min_calls=4, in_flight=lambda model: running[model])
    )

    running["m"] = 36  # a burst of 40 calls: 4 fail at once while the other 36 still stream
    for _ in range(4):
        engine.observe(call(outcome="error", cause="server_error"))
    assert sent == []  # 4 of 40, not 4 of 4

    running["m"] = 0  # the same failures with nothing else running are an outage
    engine.observe(call(outcome="error", cause="server_error"))
    assert states(sent) == [("error_rate:m", "firing")]
    assert "5 of the last 5 calls failed" in sent[0].message


def test_fallback_used_per_ladder() -> None:
    engine, sent, _ = engine_with(alert_rules.FallbackUsed())

    engine.observe(call(outcome="error", cause="server_error", rung=0))
    engine.observe(call("backup", rung=1))
    engine.observe(call("backup", rung=2))
    engine.observe(call(rung=0))

    assert states(sent) == [("fallback_used:fallback", "firing"), ("fallback_used:fallback", "resolved")]
    assert "rung 1" in sent[0].message


def test_an_unpriced_model_alerts_once() -> None:
    engine, sent, _ = engine_with(alert_rules.UnpricedModel())

    engine.observe(call("new-model", cost_usd=None))
    engine.observe(call("new-model", cost_usd=None))
    engine.observe(call("priced"))

    assert states(sent) == [("unpriced_model:new-model", "firing")]


async def test_cumulative_cost_alerts_once_when_crossed() -> None:
    engine, sent, _ = engine_with()
    watch = SpendWatch(MemorySpendLedger(), Decimal("0.0025"), engine.signal)

    for _ in range(5):
        watch(call(cost_usd=Decimal("0.001")))
    await watch.drain()

    assert states(sent) == [("cost_threshold:all", "firing")]
    assert "$0.0030" in sent[0].message
