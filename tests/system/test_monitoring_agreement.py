"""Issue-level check: after a burst of mixed traffic with failovers, the stats, the calls list,
the SQLite file and /metrics agree; a slow model's alert reaches a real webhook receiver once,
and its resolution once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from benchmarks.load import metric_sum
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.receivers import HttpReceiver

QUESTIONS = ["What is a breaker?", "fail: what is a retry?", "인공지능이란?", "fail: explain backoff"]


async def burst(http: httpx.AsyncClient, count: int) -> list[httpx.Response]:
    async def one(i: int) -> httpx.Response:
        question = {"question": f"{QUESTIONS[i % len(QUESTIONS)]} #{i}"}
        kind = i % 5
        if kind == 0:
            return await http.post("/fallback/invoke", json={"input": question})
        if kind == 1:
            return await http.post("/fallback/stream", json={"input": question})
        if kind == 2:
            config = {"configurable": {"llm_model": ["openai", "gpt4", "gemini"][i % 3]}, "tags": ["burst"]}
            return await http.post("/chat/invoke", json={"input": question, "config": config})
        if kind == 3:
            return await http.post("/chat/batch", json={"inputs": [question, question]})
        return await http.post("/quality/invoke", json={"input": question})

    responses: list[httpx.Response] = []
    for start in range(0, count, 20):  # 20 at a time: concurrent, yet no call is slow enough to alert
        responses += await asyncio.gather(*(one(i) for i in range(start, min(start + 20, count))))
    return responses


@pytest.fixture
def monitored_app(double: ProviderDouble, make_app: AppFactory, receiver: HttpReceiver) -> FastAPI:
    settings = settings_for(
        double,
        alert_webhook_url=f"{receiver.url}/hook",
        alert_slow_response_s=0.5,
        alert_cooldown_s=0,
        primary_timeout_s=30,  # a loaded machine must not turn a success into a timeout here
    )
    return make_app(settings)


async def test_200_mixed_requests_stats_calls_sqlite_and_metrics_agree(
    monitored_app: FastAPI, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=503, fail_when=lambda q: "fail:" in q))
    transport = httpx.ASGITransport(app=monitored_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s", timeout=30) as http:
        responses = await burst(http, 200)
        stats = (await http.get("/monitoring/stats")).json()
        calls = (await http.get("/monitoring/calls", params={"limit": 1000})).json()["calls"]
        metrics = (await http.get("/metrics")).text

    assert all(r.status_code == 200 for r in responses)
    totals = stats["totals"]
    served = [s for s in double.served if s.status]
    local = stats["models"]["SmolLM2-135M-Instruct"]  # the embedded model is not behind the double
    by_record = Counter((c["model"], c["cause"]) for c in calls)
    by_double = Counter((s.model, s.status) for s in double.served)
    assert totals["calls"] == len(served) + local["calls"] == len(calls), (by_record, by_double)
    assert totals["input_tokens"] - local["input_tokens"] == sum(s.input_tokens for s in served)
    assert totals["output_tokens"] - local["output_tokens"] == sum(s.output_tokens for s in served)
    assert totals["errors"] == sum(1 for s in served if s.status != 200) > 0
    assert totals["fallback_answers"] > 0

    db = sqlite3.connect(monitored_app.state.settings.monitoring_db_path)
    count, tokens_in, tokens_out = db.execute(
        "SELECT count(*), sum(input_tokens), sum(output_tokens) FROM calls"
    ).fetchone()
    cost = sum((Decimal(c) for (c,) in db.execute("SELECT cost_usd FROM calls WHERE cost_usd IS NOT NULL")), Decimal(0))
    db.close()

    assert count == totals["calls"] == metric_sum(metrics, "llm_calls_total")
    assert tokens_in == totals["input_tokens"] == sum(c["input_tokens"] for c in calls)
    assert tokens_in == metric_sum(metrics, "llm_tokens_total", kind="input")
    assert tokens_out == totals["output_tokens"] == metric_sum(metrics, "llm_tokens_total", kind="output")
    assert Decimal(totals["cost_usd"]) == cost == sum(Decimal(c["cost_usd"]) for c in calls if c["cost_usd"])
    assert metric_sum(metrics, "llm_cost_usd_total") == pytest.approx(float(cost), rel=1e-9)
    assert totals["errors"] == metric_sum(metrics, "llm_errors_total")
    assert totals["fallback_answers"] == metric_sum(metrics, "llm_fallback_answers_total")
    assert metric_sum(metrics, "http_requests_total", route="/fallback/invoke", status="200") == 40


async def test_a_slow_model_alert_reaches_the_webhook_once_and_its_resolution_once(
    monitored_app: FastAPI, double: ProviderDouble, receiver: HttpReceiver
) -> None:
    ask_gemini = {"input": {"question": "hi"}, "config": {"configurable": {"llm_model": "gemini"}}}
    transport = httpx.ASGITransport(app=monitored_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s", timeout=30) as http:
        double.set("gemini-3.5-flash", Behaviour(delay_s=0.6))
        for _ in range(2):  # sustained: still one notification
            await http.post("/chat/invoke", json=ask_gemini)
        firing_now = (await http.get("/monitoring/alerts")).json()["firing"]
        double.set("gemini-3.5-flash", Behaviour())
        await http.post("/chat/invoke", json=ask_gemini)
        await monitored_app.state.monitoring.dispatcher.drain()
        history = (await http.get("/monitoring/alerts")).json()["history"]

    key = "slow_response:gemini-3.5-flash"
    delivered = [r.body for r in receiver.on("/hook") if r.body["key"] == key]
    assert [d["state"] for d in delivered] == ["firing", "resolved"]
    assert [f["key"] for f in firing_now] == [key]
    assert [a["state"] for a in history if a["key"] == key] == ["resolved", "firing"]
    firing = next(a for a in history if a["key"] == key and a["state"] == "firing")
    delivered_to = {(d["sink"], d["ok"], d["attempts"]) for d in firing["deliveries"]}
    assert delivered_to == {("log", True, 1), ("webhook", True, 1)}
