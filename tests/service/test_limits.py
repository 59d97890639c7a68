"""Per-key limits that bound use, through the HTTP API: a batch counts each input, prompt tokens
are reserved at admission, an overshoot is owed into the next minutes (through Redis too), and
``/feedback`` has its own limit. The limits run on a clock of the test's, so windows pass
without waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from policy.limits import PROMPT_OVERHEAD_TOKENS, Reservations, estimate_prompt_tokens
from settings import Settings
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.clock import FakeClock
from tests.helpers.keys import as_tier, keys_file, limited_tiers
from tests.helpers.limits import START, app_on, serving
from tests.helpers.provider_double import Behaviour, ProviderDouble

QUESTION = {"question": "What is LangServe?"}


def pro_settings(double: ProviderDouble, tmp_path: Path, **limits: int) -> Settings:
    return settings_for(double, api_keys_file=keys_file(tmp_path), tiers=limited_tiers(**limits))


def batch(size: int, question: dict[str, str] = QUESTION) -> dict[str, object]:
    return {"inputs": [question] * size}


def asking(chars: int) -> dict[str, object]:
    """An invoke whose question is ``chars`` characters of English words."""
    return {"input": {"question": ("word " * chars)[:chars]}}


def of_estimate(tokens: int) -> dict[str, object]:
    """An invoke whose question is estimated at exactly ``tokens`` prompt tokens."""
    request = asking(4 * (tokens - PROMPT_OVERHEAD_TOKENS))
    assert estimate_prompt_tokens(request["input"]["question"]) == tokens  # type: ignore[index]
    return request


async def test_a_batch_over_the_requests_left_is_refused_whole_before_any_call(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = app_on(make_app, pro_settings(double, tmp_path, requests_per_minute=5), FakeClock(START))
    async with serving(app) as http:
        refused = await http.post("/chat/batch", json=batch(8), headers=as_tier("pro"))
        calls_after_refusal = len(double.served)
        fitting = await http.post("/chat/batch", json=batch(5), headers=as_tier("pro"))

    assert refused.status_code == 429
    assert refused.json()["limit"] == "requests_per_minute"
    assert refused.json()["requested"] == 8 and refused.json()["fit"] == 5
    assert "at most 5" in refused.json()["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert calls_after_refusal == 0
    assert fitting.status_code == 200, "the refused batch left no count behind"
    assert len(double.served) == 5


async def test_batch_items_count_as_requests(double: ProviderDouble, make_app: AppFactory, tmp_path: Path) -> None:
    clock = FakeClock(START)
    app = app_on(make_app, pro_settings(double, tmp_path, requests_per_minute=5), clock)
    async with serving(app) as http:
        four = await http.post("/chat/batch", json=batch(4), headers=as_tier("pro"))
        two = await http.post("/chat/batch", json=batch(2), headers=as_tier("pro"))
        fifth = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
        sixth = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
        wait = int(sixth.headers["retry-after"])
        clock.now += wait - 1
        too_soon = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
        clock.now += 1
        on_time = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))

    assert four.status_code == 200
    assert two.status_code == 429 and two.json()["fit"] == 1 and "1 fit now" in two.json()["message"]
    assert fifth.status_code == 200
    assert sixth.status_code == 429 and sixth.json()["limit"] == "requests_per_minute"
    # The five, counted a second into their window, weigh 5 x (1 - share gone) on the next one: room
    # for a sixth once a fifth of it has gone by (4 left), 59 + 12 s later, never a sixth within a minute.
    assert wait == 72
    assert too_soon.status_code == 429
    assert on_time.status_code == 200
    assert len(double.served) == 6


async def test_a_minute_boundary_lets_no_extra_request_through(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    clock = FakeClock(START + 58)  # a second before the window ends
    app = app_on(make_app, pro_settings(double, tmp_path, requests_per_minute=5), clock)
    async with serving(app) as http:
        five = [await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro")) for _ in range(5)]
        clock.now += 2  # a second into the next window: the five still weigh 5 x 59/60
        sixth = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))

    assert [response.status_code for response in five] == [200] * 5
    assert sixth.status_code == 429, "six requests in two seconds against five a minute"
    assert len(double.served) == 5


async def test_a_prompt_estimated_over_the_tokens_left_is_refused_before_any_call(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    budget = 300
    app = app_on(make_app, pro_settings(double, tmp_path, tokens_per_minute=budget), FakeClock(START))
    async with serving(app) as http:
        first = await http.post("/chat/invoke", json=asking(400), headers=as_tier("pro"))
        await app.state.policy.meter.drain()
        used = double.served[0].input_tokens + double.served[0].output_tokens
        # The reservation is what a request costs at least; the call's tokens cover it, not add to it.
        left = budget - max(used, estimate_prompt_tokens(("word " * 400)[:400]))
        whole_budget = await http.post("/chat/invoke", json=asking(4 * budget), headers=as_tier("pro"))
        one_too_many = await http.post("/chat/invoke", json=of_estimate(left + 1), headers=as_tier("pro"))
        calls_after_refusals = len(double.served)
        exactly_left = await http.post("/chat/invoke", json=of_estimate(left), headers=as_tier("pro"))

    assert first.status_code == 200
    assert 0 < left < budget
    assert whole_budget.status_code == 429 and "shorten it" in whole_budget.json()["message"]
    assert one_too_many.status_code == 429
    assert one_too_many.json()["limit"] == "tokens_per_minute"
    assert one_too_many.json()["reserved"] == left + 1
    assert f"estimated at {left + 1} tokens and {left} left" in one_too_many.json()["message"]
    assert calls_after_refusals == 1, "refused before any provider call"
    assert exactly_left.status_code == 200


async def test_concurrent_batches_stay_within_the_budget_and_their_overshoot_is_owed(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    budget = 1000
    clock = FakeClock(START)
    settings = pro_settings(double, tmp_path, tokens_per_minute=budget, requests_per_minute=100)
    app = app_on(make_app, settings, clock)
    double.set("gpt-4o-mini", Behaviour(text="word " * 250))  # long answers: each call runs over
    long_batch = batch(8, {"question": ("word " * 40)[:200]})  # 58 tokens each, 464 reserved per batch
    small = {"input": QUESTION}
    async with serving(app) as http:
        batches = await asyncio.gather(
            *(http.post("/chat/batch", json=long_batch, headers=as_tier("pro")) for _ in range(4))
        )
        await app.state.policy.meter.drain()
        used = sum(s.input_tokens + s.output_tokens for s in double.served)
        calls = len(double.served)
        clock.now += 60  # the next window
        next_window = await http.post("/chat/invoke", json=small, headers=as_tier("pro"))
        wait = int(next_window.headers["retry-after"])
        paid = clock.now + wait
        clock.now = paid - 5
        before_paid = await http.post("/chat/invoke", json=small, headers=as_tier("pro"))
        clock.now = paid
        once_paid = await http.post("/chat/invoke", json=small, headers=as_tier("pro"))

    assert sorted(r.status_code for r in batches) == [200, 200, 429, 429], "two batches' prompts fit the budget"
    assert {r.json()["limit"] for r in batches if r.status_code == 429} == {"tokens_per_minute"}
    assert calls == 16
    assert used > 3 * budget, "the answers ran far over the budget"
    assert next_window.status_code == 429
    assert next_window.json()["limit"] == "tokens_per_minute"
    assert next_window.json()["owed"] > 0 and "owes" in next_window.json()["message"]
    minutes = (paid - START) / 60
    # Refused until the key's use, overshoot included, is back to the budget: one window's worth
    # over it at most, and not held back much past it.
    assert used - budget <= budget * minutes <= used + budget
    assert before_paid.status_code == 429
    assert once_paid.status_code == 200


async def test_feedback_over_its_per_minute_limit_gets_429(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    clock = FakeClock(START)
    app = app_on(make_app, pro_settings(double, tmp_path, feedback_per_minute=2), clock)
    verdict = {"run_id": "run-nobody-made", "score": 1.0}
    async with serving(app) as http:
        statuses = [(await http.post("/feedback", json=verdict, headers=as_tier("pro"))).status_code for _ in range(2)]
        refused = await http.post("/feedback", json=verdict, headers=as_tier("pro"))
        other_key = await http.post("/feedback", json=verdict, headers=as_tier("enterprise"))
        chain = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
        clock.now += 120
        later = await http.post("/feedback", json=verdict, headers=as_tier("pro"))

    assert statuses == [404, 404], "counted whatever the answer"
    assert refused.status_code == 429
    assert refused.json()["limit"] == "feedback_per_minute" and refused.json()["allowed"] == 2
    # Two counted a second into their window leave room for one more once half the next has gone
    # by (2 x (1 - 1/2) = 1): 59 s and 30 s, a millisecond past, rounded up.
    assert int(refused.headers["retry-after"]) == 90
    assert other_key.status_code == 404, "per key"
    assert chain.status_code == 200, "feedback has a limit of its own"
    assert later.status_code == 404


def test_reservations_are_bounded_and_expire() -> None:
    clock = FakeClock(START)
    ledger = Reservations(clock, capacity=3, ttl_s=60)
    ledger.add("key", "r1", 100)
    assert ledger.cover("key", "r1", 30) == 0
    assert ledger.cover("other-key", "r1", 30) == 30, "a request id is the key's own"
    assert ledger.cover("key", "r1", 100) == 30, "70 were left"
    assert ledger.cover("key", "r1", 10) == 10, "used up"

    for n in range(5):
        ledger.add("key", f"r{n}", 10)
    assert len(ledger) == 3 and ledger.cover("key", "r0", 10) == 10, "the oldest went"
    clock.now += 61
    assert ledger.cover("key", "r4", 10) == 10 and len(ledger) == 0, "expired"
