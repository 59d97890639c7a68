"""RetryPolicy decisions, ladder orders and fault plans: pure functions, no network."""

from __future__ import annotations

from errors import Cause
from monitoring.pricing import PriceTable
from resilience.faults import FaultPlan, FaultSpec
from resilience.latency import LatencyBoard
from resilience.order import cheapest_first, fastest_first, ordered
from resilience.retry import RetryPolicy
from settings import Settings
from tests.helpers.records import call as record
from wiring.models import model_specs

POLICY = RetryPolicy(attempts=3, base_s=0.5, max_backoff_s=4.0, max_retry_after_s=5.0, jitter=lambda: 1.0)


def test_only_transient_causes_are_retried() -> None:
    for cause in (Cause.RATE_LIMITED, Cause.SERVER_ERROR, Cause.CONNECTION):
        assert POLICY.wait_before_retry(cause, 1, None, None) == 0.5
    for cause in (Cause.BAD_REQUEST, Cause.TIMEOUT, Cause.AUTH, Cause.QUALITY_REJECTED, Cause.NOT_CONFIGURED):
        assert POLICY.wait_before_retry(cause, 1, None, None) is None


def test_backoff_doubles_up_to_its_cap_and_stops_after_the_last_try() -> None:
    policy = RetryPolicy(attempts=10, base_s=0.5, max_backoff_s=4.0, jitter=lambda: 1.0)
    waits = [policy.wait_before_retry(Cause.SERVER_ERROR, tries, None, None) for tries in range(1, 7)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert POLICY.wait_before_retry(Cause.SERVER_ERROR, 3, None, None) is None


def test_jitter_spreads_the_wait_between_half_the_backoff_and_all_of_it() -> None:
    waits = [RetryPolicy(base_s=1.0, jitter=lambda j=j: j).wait_before_retry(Cause.SERVER_ERROR, 1, None, None)
             for j in (0.0, 0.5, 1.0)]  # fmt: skip
    assert waits == [0.5, 0.75, 1.0]
    assert RetryPolicy().wait_before_retry(Cause.SERVER_ERROR, 1, None, None) >= 0.25, "the default starts near 0.5 s"


def test_retry_after_is_honoured_and_a_long_one_fails_over_instead() -> None:
    assert POLICY.wait_before_retry(Cause.RATE_LIMITED, 1, 3.0, None) == 3.0
    assert POLICY.wait_before_retry(Cause.RATE_LIMITED, 1, 7.0, None) is None


def test_no_wait_that_would_pass_the_deadline() -> None:
    assert POLICY.wait_before_retry(Cause.SERVER_ERROR, 1, None, time_left=0.4) is None
    assert POLICY.wait_before_retry(Cause.RATE_LIMITED, 1, 3.0, time_left=2.0) is None
    assert POLICY.wait_before_retry(Cause.SERVER_ERROR, 1, None, time_left=10.0) == 0.5


SPECS = list(model_specs(Settings(_env_file=None)).values())  # openai, gemini, gpt4, local


def names(order: list[int]) -> list[str]:
    return [SPECS[i].alternative for i in order]


def test_ordered_keeps_the_configured_order() -> None:
    assert names(ordered(SPECS)) == ["openai", "gemini", "gpt4", "local"]


def test_cheapest_first_sorts_by_price_and_keeps_local_last() -> None:
    prices = PriceTable.from_file(Settings(_env_file=None).price_table_path)
    order = names(cheapest_first(prices)(SPECS))
    assert order[-1] == "local"
    totals = [prices.price_of(SPECS[i].model) for i in cheapest_first(prices)(SPECS)[:-1]]
    assert all(p is not None for p in totals)
    sums = [p.input + p.output for p in totals if p is not None]
    assert sums == sorted(sums)
    assert order.index("gpt4") == 2, "gpt-4o is the dearest of the three"


def test_cheapest_first_puts_unpriced_models_after_priced_ones() -> None:
    prices = PriceTable({})
    assert names(cheapest_first(prices)(SPECS)) == ["openai", "gemini", "gpt4", "local"]


def test_fastest_first_uses_monitored_latency_and_tries_unmeasured_models_first() -> None:
    latency = LatencyBoard(weight=1.0)
    latency.observe(record(model=SPECS[0].model, duration_s=2.0))
    latency.observe(record(model=SPECS[2].model, duration_s=0.5))
    assert names(fastest_first(latency)(SPECS)) == ["gemini", "gpt4", "openai", "local"]
    latency.observe(record(model=SPECS[1].model, duration_s=1.0))
    assert names(fastest_first(latency)(SPECS)) == ["gpt4", "gemini", "openai", "local"]


def test_latency_board_ignores_failed_calls_and_averages_recent_ones() -> None:
    latency = LatencyBoard(weight=0.5)
    latency.observe(record(model="m", duration_s=1.0))
    latency.observe(record(model="m", duration_s=3.0))
    latency.observe(record(model="m", duration_s=30.0, outcome="error", cause="timeout"))
    assert latency.latency_of("m") == 2.0


def test_fault_plan_applies_each_fault_with_its_probability() -> None:
    draws = iter([0.1, 0.6, 0.4])
    plan = FaultPlan({"openai": FaultSpec(kind="status", probability=0.5)}, draw=lambda: next(draws))
    assert [plan.pick("openai") is not None for _ in range(3)] == [True, False, True]
    assert plan.pick("gemini") is None
