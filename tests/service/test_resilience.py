"""Retries, circuit breakers, deadlines, cut streams and fault injection, through the real SDKs
against the provider double. The breakers' clock is a fake one and retry waits are recorded,
not slept; only the first-token and request deadlines run on real (sub-second) timers."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from benchmarks.load import metric_sum
from tests.helpers.apps import calls_for
from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.resilient import PRIMARY, SECOND, Made, breaker_state

QUESTION = {"input": {"question": "What is a circuit breaker?"}}


def first_time_only() -> Callable[[str], bool]:
    calls = itertools.count()
    return lambda _question: next(calls) == 0


async def test_a_429_with_retry_after_is_retried_on_the_same_rung_after_that_wait(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    app, client, fake = make_resilient(retry_attempts=2)
    double.set(PRIMARY, Behaviour(fail_status=429, retry_after="2", fail_when=first_time_only()))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 200
    assert response.headers["x-served-by"] == PRIMARY
    assert fake.slept == [2.0]
    calls = await calls_for(app, response.headers["x-request-id"])
    assert [(c["model"], c["outcome"], c["cause"]) for c in calls] == [
        (PRIMARY, "error", "rate_limited"),
        (PRIMARY, "ok", None),
    ]


async def test_a_caller_error_is_neither_retried_nor_failed_over(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    _, client, fake = make_resilient(retry_attempts=3)
    double.set(PRIMARY, Behaviour(fail_status=400))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 422
    assert response.json()["message"], response.text
    assert len(double.requests_for(PRIMARY)) == 1
    assert double.requests_for(SECOND) == []
    assert fake.slept == []


async def test_a_hard_down_primary_opens_its_breaker_is_skipped_and_closes_after_a_probe(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    # A primary timeout the test is not about: on a loaded machine 1 s can pass before the 503 arrives.
    _, client, fake = make_resilient(
        retry_attempts=1, breaker_consecutive_failures=3, breaker_open_s=30, primary_timeout_s=10
    )
    double.set(PRIMARY, Behaviour(fail_status=503))

    for _ in range(3):
        assert (await client.post("/fallback/invoke", json=QUESTION)).headers["x-served-by"] == SECOND
    skipped = await client.post("/fallback/invoke", json=QUESTION)

    assert skipped.headers["x-served-by"] == SECOND
    assert len(double.requests_for(PRIMARY)) == 3, "an open breaker skips its rung without a call"
    assert await breaker_state(client) == "open"
    firing = (await client.get("/monitoring/alerts")).json()["firing"]
    assert any(f["rule"] == "circuit_breaker" and f["labels"]["endpoint"] == f"openai:{PRIMARY}" for f in firing)
    metrics = (await client.get("/metrics")).text
    assert metric_sum(metrics, "circuit_breaker_state", endpoint=f"openai:{PRIMARY}") == 2

    double.set(PRIMARY, Behaviour())
    fake.now += 30
    probe = await client.post("/fallback/invoke", json=QUESTION)

    assert probe.headers["x-served-by"] == PRIMARY
    assert await breaker_state(client) == "closed"
    history = (await client.get("/monitoring/alerts")).json()["history"]
    assert [a["state"] for a in history if a["rule"] == "circuit_breaker"] == ["resolved", "firing"]
    metrics = (await client.get("/metrics")).text
    assert metric_sum(metrics, "circuit_breaker_state", endpoint=f"openai:{PRIMARY}") == 0


async def test_a_hanging_primary_costs_no_more_than_the_first_token_deadline(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    # 1 s: the healthy next rung must beat the same deadline on a loaded machine (-n auto).
    app, client, _ = make_resilient(first_token_timeout_s=1.0, primary_timeout_s=30)
    double.set(PRIMARY, Behaviour(delay_s=30))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.headers["x-served-by"] == SECOND
    primary = (await calls_for(app, response.headers["x-request-id"]))[0]
    assert (primary["model"], primary["cause"]) == (PRIMARY, "timeout")
    assert 1.0 <= primary["duration_s"] < 3


async def test_a_cut_stream_behind_an_invoke_fails_over_as_truncated(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    app, client, _ = make_resilient()
    words = "one two three four five six seven eight".split()
    double.set(PRIMARY, Behaviour(text=" ".join(words), cut_stream=True))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.headers["x-served-by"] == SECOND
    calls = await calls_for(app, response.headers["x-request-id"])
    assert [(c["model"], c["cause"]) for c in calls] == [(PRIMARY, "truncated_stream"), (SECOND, None)]
    # Billed for what it streamed before the cut (a chunk a word, the double's default cut at half
    # the words and one), and for its prompt, which the provider read whole.
    assert calls[0]["output_tokens"] == len(words) // 2 + 1
    assert calls[0]["input_tokens"] > 0 and calls[0]["metadata"]["usage_estimated"] is True


async def test_the_request_deadline_bounds_the_whole_ladder(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    _, client, _ = make_resilient(request_deadline_s=0.4, first_token_timeout_s=10, primary_timeout_s=30)
    for model in (PRIMARY, SECOND, "gpt-4o"):
        double.set(model, Behaviour(delay_s=30))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 503
    attempts = response.json()["attempts"]
    assert (attempts[0]["model"], attempts[0]["cause"]) == (PRIMARY, "timeout")
    assert all(a["cause"] == "timeout" and a["tries"] == 0 for a in attempts[1:])
    assert double.requests_for(SECOND) == []


async def test_fault_injection_fails_the_named_alternative_inside_its_own_call(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    app, client, _ = make_resilient(faults={"openai": {"kind": "status", "status": 503}})

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.headers["x-served-by"] == SECOND
    primary = (await calls_for(app, response.headers["x-request-id"]))[0]
    assert (primary["model"], primary["cause"]) == (PRIMARY, "server_error")
    assert "injected fault" in primary["error"]
    assert double.requests_for(PRIMARY) == []


async def test_quality_rejects_forbidden_words_and_the_next_model_answers(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    _, client, _ = make_resilient(quality_forbidden_words=["Guaranteed"])
    double.set(PRIMARY, Behaviour(text="This answer is guaranteed to be right, and long enough to pass the check."))

    response = await client.post("/quality/invoke", json=QUESTION)

    assert response.headers["x-served-by"] == SECOND
