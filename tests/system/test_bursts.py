"""Bursts through the in-process app: hundreds of requests through a failing primary, and a
router that learns from many rated answers. Load more than logic, so they run with the system tier."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.helpers.apps import AppFactory, policy_kit, settings_for, sse_events
from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.resilient import PRIMARY, Made, breaker_state

QUESTION = {"input": {"question": "What is a circuit breaker?"}}


def auto(question: str) -> dict[str, object]:
    return {"input": {"question": question}, "config": {"configurable": {"llm_model": "auto"}}}


def _fault_for(question: str) -> int:
    return int(question.rsplit("#", 1)[-1]) % 4


async def test_500_requests_through_a_failing_primary_all_succeed_within_the_deadline(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    deadline_s = 8.0
    app, client, fake = make_resilient(
        retry_attempts=2,
        first_token_timeout_s=2.0,  # generous: many streams at once on 2 cores delay healthy first tokens
        request_deadline_s=deadline_s,
        breaker_consecutive_failures=5,
        breaker_open_s=30,
    )

    # Requests #n: n % 4 picks the fault: 0 -> 503, 1 -> 429 with Retry-After, 2 -> hang, 3 -> cut stream.
    double.set(
        PRIMARY,
        Behaviour(
            status_for=lambda q: {0: 503, 1: 429}.get(_fault_for(q)),
            retry_after="1",
            delay_for=lambda q: 30.0 if _fault_for(q) == 2 else 0.0,
            cut_stream=True,
        ),
    )

    async def one(n: int) -> tuple[int, float, bool]:
        body = {"input": {"question": f"What is resilience? #{n}"}}
        stream = n % 5 == 0 and _fault_for(f"#{n}") != 3  # a cut after text cannot be taken back
        response = await client.post("/fallback/stream" if stream else "/fallback/invoke", json=body)
        ok = response.status_code == 200 and not any(e == "error" for e, _ in sse_events(response.text))
        return response.status_code, response.elapsed.total_seconds(), ok

    results: list[tuple[int, float, bool]] = []
    for start in range(0, 500, 10):
        results += await asyncio.gather(*(one(n) for n in range(start, start + 10)))

    assert all(ok for _, _, ok in results), [r for r in results if not r[2]][:5]
    assert max(elapsed for _, elapsed, _ in results) < deadline_s
    primary_calls = await app.state.monitoring.store.find(model=PRIMARY, limit=1000)
    reached = len(double.requests_for(PRIMARY))
    assert len(primary_calls) == reached, f"every attempt recorded once: {len(primary_calls)} records, {reached} calls"
    assert {c.outcome for c in primary_calls} == {"error"}, {(c.outcome, c.cause) for c in primary_calls}
    assert {c.cause for c in primary_calls} <= {"server_error", "rate_limited", "timeout", "truncated_stream"}
    assert len(primary_calls) < 100, "the open breaker kept most requests away from the primary"
    assert all(wait <= 1.0 for wait in fake.slept), "retries wait out Retry-After and backoff, within the deadline"
    assert await breaker_state(client) == "open"

    double.set(PRIMARY, Behaviour())
    fake.now += 30
    assert (await client.post("/fallback/invoke", json=QUESTION)).headers["x-served-by"] == PRIMARY
    assert await breaker_state(client) == "closed"


async def test_negative_feedback_moves_a_question_types_traffic_off_a_model(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    settings = settings_for(double, routing_exploration=0.2)
    app = make_app(settings, policy=policy_kit(settings, seed=11))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:

        async def share_of_openai(rounds: int, score: float | None, http: httpx.AsyncClient = http) -> float:
            served = []
            for n in range(rounds):
                response = await http.post("/chat/invoke", json=auto(f"What is the capital of country number {n}?"))
                assert response.status_code == 200
                served.append(response.headers["x-served-by"])
                if score is not None and response.headers["x-served-by"] == "gpt-4o-mini":
                    feedback = {"run_id": response.json()["metadata"]["run_id"], "score": score}
                    assert (await http.post("/feedback", json=feedback)).status_code == 200
            return served.count("gpt-4o-mini") / rounds

        before = await share_of_openai(30, score=None)
        await share_of_openai(30, score=0.0)  # people keep rating gpt-4o-mini's answers as bad
        after = await share_of_openai(30, score=None)
        routing = (await http.get("/monitoring/routing")).json()

    assert before >= 0.7, "factual questions start on gpt-4o-mini (the preferred model)"
    assert after <= 0.2, f"share fell from {before:.2f} to {after:.2f}"
    factual = {arm["model"]: arm for arm in routing["arms"]["factual"]}
    assert factual["openai"]["estimate"] < factual["gemini"]["estimate"]
    assert routing["feedback"] and routing["feedback"][0]["score"] == 0.0
