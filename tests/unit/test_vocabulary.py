"""The vocabulary (``vocabulary/``): each name once, what each cause means, and that the modules
which used to keep their own copies now agree with it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest

from chains.trial import account
from monitoring.alert_rules import ErrorRate, LLMError
from monitoring.pricing import PriceTable
from policy.adaptive_router import PREFERENCES, RewardModel
from policy.tiers import default_tiers
from resilience.breaker import BreakerPolicy, CircuitBreaker
from resilience.retry import RetryPolicy
from settings import Settings
from vocabulary import (
    ALTERNATIVES,
    AUTO,
    CONFIGURABLE_IDS,
    DEFAULT_ALTERNATIVE,
    DEFAULT_LADDER,
    FLOOR,
    PROMPT_STYLES,
    Cause,
    Outcome,
    cause_of,
)
from vocabulary.outcomes import OutcomeName
from vocabulary.records import CallRecord
from wiring.models import model_specs

# What each cause meant before it lived on the cause (the ladder's, the retry policy's and the
# alert rules' own sets): moving the decision must not change it.
UNHEALTHY = {
    Cause.RATE_LIMITED,
    Cause.TIMEOUT,
    Cause.SERVER_ERROR,
    Cause.CONNECTION,
    Cause.AUTH,
    Cause.TRUNCATED_STREAM,
    Cause.MALFORMED_STREAM,
    Cause.STALLED_STREAM,
    Cause.OVERLOADED,
    Cause.UNKNOWN,
}
TRANSIENT = {Cause.RATE_LIMITED, Cause.SERVER_ERROR, Cause.CONNECTION}
# UNSUPPORTED is new with the OpenAI-compatible door: asking a model for what it cannot do (tools)
# is nobody's incident, and says nothing of the endpoint's health; nor does a budget that cannot
# cover a rung (BUDGET_EXHAUSTED: the budget alert tells the operator).
NOT_INCIDENTS = {Cause.NOT_CONFIGURED, Cause.CANCELLED, Cause.BAD_REQUEST, Cause.UNSUPPORTED, Cause.BUDGET_EXHAUSTED}


def test_each_cause_has_the_meaning_it_had() -> None:
    assert {c for c in Cause if c.is_callers_fault} == {Cause.BAD_REQUEST}
    assert {c for c in Cause if c.counts_against_breaker} == UNHEALTHY
    assert {c for c in Cause if c.is_transient} == TRANSIENT
    assert {c for c in Cause if not c.is_incident} == NOT_INCIDENTS


def test_the_meanings_agree_with_each_other() -> None:
    for cause in Cause:
        if cause.is_transient:  # a retry is only worth it for an endpoint that is unwell now
            assert cause.counts_against_breaker, cause
        if cause.is_callers_fault:  # the caller's input says nothing about the model
            assert not (cause.counts_against_breaker or cause.is_transient or cause.is_incident), cause


def test_cause_of_reads_stored_strings() -> None:
    assert cause_of("rate_limited") is Cause.RATE_LIMITED
    assert cause_of(None) is None
    assert cause_of("from_a_newer_server") is None


@pytest.mark.parametrize("cause", list(Cause))
def test_retry_policy_retries_exactly_the_transient_causes(cause: Cause) -> None:
    policy = RetryPolicy(attempts=3, jitter=lambda: 0.0)
    wait = policy.wait_before_retry(cause, tries=1, retry_after=None, time_left=None)
    assert (wait is not None) == cause.is_transient


@pytest.mark.parametrize("cause", list(Cause))
def test_ladder_counts_against_the_breaker_exactly_the_unhealthy_causes(cause: Cause) -> None:
    breaker = CircuitBreaker("openai:gpt-4o-mini", BreakerPolicy(), clock=lambda: 0.0)
    account(breaker, cause, breaker.begin())
    assert (breaker.snapshot()["failures_in_a_row"] == 1) == cause.counts_against_breaker


def _record(outcome: Outcome, cause: str | None) -> CallRecord:
    return CallRecord(
        run_id="r1",
        root_run_id=None,
        request_id=None,
        route="chat",
        ladder=None,
        rung=None,
        alternative="openai",
        provider="openai",
        model="gpt-4o-mini",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_s=0.1,
        first_token_s=None,
        input_tokens=0,
        output_tokens=0,
        cached_input_tokens=0,
        reasoning_tokens=0,
        cost_usd=None,
        outcome=outcome,
        cause=cause,
        error="failed",
        prompt_chars=1,
        answer_chars=0,
    )


@pytest.mark.parametrize("cause", list(Cause))
def test_alerts_fire_exactly_on_incidents(cause: Cause) -> None:
    record = _record(Outcome.of_failure(cause), cause.value)
    fired = [s for s in LLMError().evaluate(record, now=0.0) if s.firing]
    assert bool(fired) == (cause.is_incident and cause is not Cause.CANCELLED)
    counted = list(ErrorRate(rate=0.5, window_s=60, min_calls=1).evaluate(record, now=0.0))
    assert bool(counted) == cause.is_incident


def test_a_cause_this_server_does_not_know_is_an_incident() -> None:
    record = _record(Outcome.ERROR, "from_a_newer_server")
    assert [s.firing for s in LLMError().evaluate(record, now=0.0)] == [True]


def test_the_router_learns_nothing_from_the_callers_fault_or_a_client_that_left() -> None:
    rewards = RewardModel()
    assert rewards.of_call(_record(Outcome.ERROR, Cause.BAD_REQUEST.value)) is None
    assert rewards.of_call(_record(Outcome.CANCELLED, Cause.CANCELLED.value)) is None
    assert rewards.of_call(_record(Outcome.ERROR, Cause.NOT_CONFIGURED.value)) == 0.0


def test_outcomes_keep_their_stored_strings() -> None:
    assert [o.value for o in Outcome] == ["ok", "error", "cancelled", "cached"]
    assert set(get_args(OutcomeName)) == {o.value for o in Outcome}
    assert Outcome.of_failure(Cause.CANCELLED) is Outcome.CANCELLED
    assert Outcome.of_failure(Cause.TIMEOUT) is Outcome.ERROR


def test_contract_names() -> None:
    assert ALTERNATIVES == ("openai", "gpt4", "gemini", "local")
    assert AUTO == "auto" and AUTO not in ALTERNATIVES
    assert DEFAULT_ALTERNATIVE == "openai"
    assert CONFIGURABLE_IDS == ("llm_model", "prompt_style", "llm_temperature")
    assert PROMPT_STYLES == ("default", "detailed", "concise")
    assert DEFAULT_LADDER[-1] == FLOOR and set(DEFAULT_LADDER) == set(ALTERNATIVES)


def test_every_alternative_is_built_and_its_default_model_priced() -> None:
    settings = Settings(_env_file=None)
    specs = model_specs(settings)
    assert set(specs) == set(ALTERNATIVES)
    prices = PriceTable.from_file(settings.price_table_path)
    unpriced = [spec.model for spec in specs.values() if prices.price_of(spec.model) is None]
    assert unpriced == []


def test_every_alternative_is_in_some_tier_and_ranked_for_every_question_type() -> None:
    tiers = default_tiers()
    assert set().union(*(tier.models for tier in tiers.values())) == set(ALTERNATIVES)
    for order in PREFERENCES.values():
        assert sorted(order) == sorted(ALTERNATIVES)


def test_old_import_paths_name_the_same_objects() -> None:
    import chains.builders
    import chains.prompts
    import errors
    import errors.causes
    import policy.request_policy
    import policy.tiers
    import vocabulary

    assert errors.Cause is errors.causes.Cause is vocabulary.Cause
    assert policy.tiers.ALTERNATIVES is vocabulary.ALTERNATIVES
    assert policy.tiers.AUTO is chains.builders.AUTO is vocabulary.AUTO
    assert chains.prompts.PROMPT_STYLES is vocabulary.PROMPT_STYLES
    assert set(chains.prompts.TEMPLATES) == set(vocabulary.PROMPT_STYLES)
    assert policy.request_policy.TEMPERATURE_RANGE is vocabulary.TEMPERATURE_RANGE
    assert (policy.request_policy.MODEL_ID, policy.request_policy.STYLE_ID, policy.request_policy.TEMPERATURE_ID) == (
        vocabulary.CONFIGURABLE_IDS
    )


ROOT = Path(__file__).resolve().parents[2]


def test_the_vocabulary_imports_nothing_of_ours() -> None:
    ours = ["api", "callbacks", "chains", "dashboard", "errors", "policy", "providers", "resilience", "settings"]
    code = f"import sys, vocabulary; print([m for m in {ours!r} + ['shared_state', 'server'] if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"
