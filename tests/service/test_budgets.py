"""Budgets in money through the HTTP API, with the provider double priced as gpt-4o-mini: a
budget stops spending at its limit on invoke, batch, stream and the OpenAI-compatible route, or
downgrades to the free local model and says so; tags charge a team's budget; ``GET /budgets``
shows a key its own; calls are held to the output the budget paid for; the alert and the metrics.
The budgets run on a clock of the test's (23:30 in Seoul, half an hour before the day resets)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai import AsyncOpenAI

from policy.budgets import Budget
from policy.keys import hash_key
from tests.helpers.apps import AppFactory, settings_for, sse_events
from tests.helpers.clock import FakeClock
from tests.helpers.keys import KEYS, as_tier, roomy_tiers, write_keys
from tests.helpers.provider_double import Behaviour, ProviderDouble
from vocabulary.run_metadata import API_KEY_ID, BUDGET_TAG, TIER, USER_ID

LATE_EVENING = 1_796_135_400.0  # 2026-12-01 23:30 in Seoul (14:30 UTC)
TO_MIDNIGHT_S = 30 * 60
QUESTION = {"question": "What is DNS?"}
MAX_OUTPUT = 40  # output tokens a budget holds for a request that names no max_tokens


def keys_with_tags(folder: Path) -> Path:
    return write_keys(
        folder,
        {"user": "bob", "tier": "pro", "key": KEYS["pro"], "tags": ["search"]},
        {"user": "carol", "tier": "enterprise", "key": KEYS["enterprise"]},
        {"user": "dana", "tier": "free", "sha256": hash_key(KEYS["admin"]), "admin": True},
    )


def budgeted(
    make_app: AppFactory, double: ProviderDouble, tmp_path: Path, *budgets: dict[str, Any], **settings: Any
) -> FastAPI:
    values: dict[str, Any] = {
        "api_keys_file": keys_with_tags(tmp_path),
        "tiers": roomy_tiers(),
        "budgets": [Budget.model_validate(b) for b in budgets],
        "budget_timezone": "Asia/Seoul",
        "budget_max_output_tokens": MAX_OUTPUT,
        "policy_prompt_styles": "00-24=default",
    }
    app = make_app(settings_for(double, **{**values, **settings}))
    app.state.budgets.clock = FakeClock(LATE_EVENING)
    return app


def per_key(limit: str, **fields: Any) -> dict[str, Any]:
    return {"name": "keys", "scope": "key", "limit_usd": limit, "window": "daily", **fields}


def identity(tier: str) -> dict[str, object]:
    user = {"pro": "bob", "enterprise": "carol"}[tier]
    return {API_KEY_ID: hash_key(KEYS[tier])[:12], USER_ID: user, TIER: tier}


async def spend_all(app: FastAPI, tier: str, usd: str) -> None:
    """Spend ``usd`` on ``tier``'s key as an earlier call would have (arranging a spent budget)."""
    app.state.budgets.settle(None, Decimal(usd), identity(tier))
    await app.state.budgets.drain()


def serving(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server")


async def recorded_cost(app: FastAPI) -> Decimal:
    await app.state.monitoring.store.flush()
    records = await app.state.monitoring.store.find(limit=1000)
    return sum((r.cost_usd or Decimal(0) for r in records), Decimal(0))


async def test_a_budget_of_a_few_cents_stops_spending_at_that_figure(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    double.set("gpt-4o", Behaviour(text=" ".join(["word"] * 300)))  # 0.003 USD of output at gpt-4o's price
    app = budgeted(make_app, double, tmp_path, per_key("0.03"), budget_max_output_tokens=400)
    gpt4 = {"input": QUESTION, "config": {"configurable": {"llm_model": "gpt4"}}}
    statuses = []
    async with serving(app) as http:
        for _ in range(20):
            answer = await http.post("/chat/invoke", json=gpt4, headers=as_tier("enterprise"))
            statuses.append(answer.status_code)
            if answer.status_code != 200:
                break
        await app.state.budgets.drain()
        calls = len(double.served)
    spent = await recorded_cost(app)
    body = answer.json()

    assert statuses[:-1] == [200] * (len(statuses) - 1) and statuses[-1] == 429
    assert body["error"] == "budget_exhausted" and body["budget"] == "keys"
    assert body["resets_at"] == "2026-12-02T00:00:00+09:00"
    assert int(answer.headers["retry-after"]) == TO_MIDNIGHT_S
    assert calls == len(statuses) - 1, "the refused call never reached the provider"
    assert len(statuses) > 5 and 0 < spent <= Decimal("0.03"), "never past the limit"
    assert Decimal(body["spent_usd"]) == spent, "the budget counted exactly what the records priced"
    left = Decimal("0.03") - spent
    assert left < Decimal(body["call_most_usd"]), "it stopped only when one more call might not fit"


async def test_a_spent_budget_refuses_invoke_batch_stream_and_the_openai_route_before_any_call(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = budgeted(make_app, double, tmp_path, per_key("0.00005"))
    await spend_all(app, "pro", "0.00005")
    async with serving(app) as http:
        invoke = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
        batch = await http.post("/chat/batch", json={"inputs": [QUESTION, QUESTION]}, headers=as_tier("pro"))
        stream = await http.post("/chat/stream", json={"input": QUESTION}, headers=as_tier("pro"))
        client = AsyncOpenAI(base_url="http://server/v1", api_key=KEYS["pro"], http_client=http, max_retries=0)
        with pytest.raises(openai.RateLimitError) as door:
            await client.chat.completions.create(model="openai", messages=[{"role": "user", "content": "Hi"}])
        other_key = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("enterprise"))

    for refused in (invoke, batch, stream):
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "budget_exhausted"
        assert int(refused.headers["retry-after"]) == TO_MIDNIGHT_S
    assert door.value.code == "budget_exhausted" and door.value.body["budget"] == "keys"  # type: ignore[index]
    assert other_key.status_code == 200, "each key has its own line of the budget"
    assert [s.model for s in double.served] == ["gpt-4o-mini"], "only the other key's call was made"


async def test_streams_and_the_openai_route_spend_from_the_budget(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = budgeted(make_app, double, tmp_path, per_key("1"))
    async with serving(app) as http:
        stream = await http.post("/chat/stream", json={"input": QUESTION}, headers=as_tier("pro"))
        client = AsyncOpenAI(base_url="http://server/v1", api_key=KEYS["pro"], http_client=http, max_retries=0)
        chunks = await client.chat.completions.create(
            model="openai", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        async for _ in chunks:
            pass
        await app.state.budgets.drain()
        standing = (await http.get("/budgets", headers=as_tier("pro"))).json()["budgets"]

    assert [event for event, _ in sse_events(stream.text)][-1] == "end"
    assert len(double.served) == 2
    assert Decimal(standing[0]["spent_usd"]) == await recorded_cost(app) > 0
    assert Decimal(standing[0]["held_usd"]) == 0, "every hold was settled"


async def test_a_downgrading_budget_serves_the_free_local_model_and_says_so(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = budgeted(make_app, double, tmp_path, per_key("0.00005", action="downgrade"))
    await spend_all(app, "pro", "0.00005")
    async with serving(app) as http:
        chat = await http.post(
            "/chat/invoke", json={"input": QUESTION, "config": {"configurable": {"llm_model": "openai"}}},
            headers=as_tier("pro"),
        )  # fmt: skip
        ladder = await http.post("/fallback/invoke", json={"input": QUESTION}, headers=as_tier("pro"))

    for answer in (chat, ladder):
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-served-by"] == "SmolLM2-135M-Instruct"
        assert answer.headers["x-budget-downgraded"] == "keys"
    assert double.served == [], "no priced model was called"


async def test_a_tag_charges_its_teams_budget_and_a_key_may_charge_only_its_own_tags(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    team = {"name": "team", "scope": "tag", "subject": "search", "limit_usd": "0.00005", "window": "monthly"}
    app = budgeted(make_app, double, tmp_path, team)
    app.state.budgets.settle(None, Decimal("0.00005"), {BUDGET_TAG: "search"})
    await app.state.budgets.drain()

    def tagged(tag: str | None) -> dict[str, Any]:
        return {"input": QUESTION, "config": {"metadata": {BUDGET_TAG: tag} if tag else {}}}

    async with serving(app) as http:
        charged = await http.post("/chat/invoke", json=tagged("search"), headers=as_tier("pro"))
        untagged = await http.post("/chat/invoke", json=tagged(None), headers=as_tier("pro"))
        not_mine = await http.post("/chat/invoke", json=tagged("billing"), headers=as_tier("pro"))
        no_tags = await http.post("/chat/invoke", json=tagged("search"), headers=as_tier("enterprise"))

    assert charged.status_code == 429 and charged.json()["budget"] == "team"
    assert charged.json()["resets_at"] == "2027-01-01T00:00:00+09:00", "a monthly window resets on the 1st"
    assert untagged.status_code == 200, "a request that names no tag charges no team"
    assert not_mine.status_code == 403 and not_mine.json()["error"] == "tag_not_allowed"
    assert not_mine.json()["allowed"] == ["search"]
    assert no_tags.status_code == 403 and "may charge none" in no_tags.json()["message"]


async def test_a_key_sees_its_own_budgets_and_an_admin_every_one(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = budgeted(
        make_app,
        double,
        tmp_path,
        per_key("0.01"),
        {"name": "pro-tier", "scope": "tier", "subject": "pro", "limit_usd": "1"},
    )
    async with serving(app) as http:
        for tier in ("pro", "enterprise"):
            assert (await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier(tier))).status_code == 200
        await app.state.budgets.drain()
        bobs = (await http.get("/budgets", headers=as_tier("pro"))).json()
        carols = (await http.get("/budgets", headers=as_tier("enterprise"))).json()
        every = (await http.get("/budgets", headers=as_tier("admin"))).json()

    assert bobs["timezone"] == "Asia/Seoul"
    assert sorted(b["line"] for b in bobs["budgets"]) == [f"keys:{identity('pro')[API_KEY_ID]}", "pro-tier:pro"]
    assert [b["line"] for b in carols["budgets"]] == [f"keys:{identity('enterprise')[API_KEY_ID]}"]
    assert {b["line"] for b in every["budgets"]} == {b["line"] for b in bobs["budgets"] + carols["budgets"]}
    mine = next(b for b in bobs["budgets"] if b["budget"] == "keys")
    assert Decimal(mine["spent_usd"]) > 0 and Decimal(mine["remaining_usd"]) == Decimal("0.01") - Decimal(
        mine["spent_usd"]
    )


async def test_a_call_under_a_budget_is_held_to_the_output_it_paid_for(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = budgeted(make_app, double, tmp_path, per_key("1"))
    async with serving(app) as http:
        await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
        client = AsyncOpenAI(base_url="http://server/v1", api_key=KEYS["pro"], http_client=http, max_retries=0)
        await client.chat.completions.create(model="openai", messages=[{"role": "user", "content": "Hi"}], max_tokens=7)
    unbudgeted = make_app(settings_for(double))
    async with serving(unbudgeted) as http:
        await http.post("/chat/invoke", json={"input": QUESTION})

    def asked(body: dict[str, Any]) -> int | None:
        return body.get("max_completion_tokens") or body.get("max_tokens")

    assert [asked(s.body) for s in double.served] == [MAX_OUTPUT, 7, None]


async def test_crossing_a_soft_threshold_alerts_and_the_metrics_show_the_budget(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = budgeted(make_app, double, tmp_path, per_key("0.00005", soft=[0.2]))
    async with serving(app) as http:
        answer = await http.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
        await app.state.budgets.drain()
        alerts = (await http.get("/monitoring/alerts", headers=as_tier("admin"))).json()
        metrics = (await http.get("/metrics", headers=as_tier("admin"))).text

    cost = await recorded_cost(app)
    assert answer.status_code == 200 and cost > Decimal("0.00001"), "one call passes a fifth of the limit"
    [budget_alert] = [a for a in alerts["firing"] if a["rule"] == "budget"]
    assert "reached 20% of its limit" in budget_alert["message"] and "keys" in budget_alert["message"]
    line = f'budget="keys",subject="{identity("pro")[API_KEY_ID]}"'
    assert f"llm_budget_spent_usd{{{line}}} {float(cost)}" in metrics
    assert f"llm_budget_limit_usd{{{line}}} 5e-05" in metrics
