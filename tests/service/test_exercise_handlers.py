"""The seed's exercise handlers: the keyword filter and the slow-call log, through a real app."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.provider_double import Behaviour, ProviderDouble

QUESTION = {"input": {"question": "Tell me a secret."}}
LEAKY = "Here is the answer: the launch code is swordfish, and that is a long enough answer to pass."


def flagged_count(metrics: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "llm_flagged_answers_total"
    )


async def test_block_mode_rejects_the_answer_and_the_next_model_answers(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, keyword_filter_words=["SwordFish", "기밀"], keyword_filter_mode="block"))
    double.set("gpt-4o-mini", Behaviour(text=LEAKY))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        response = await http.post("/fallback/invoke", json=QUESTION)
        metrics = (await http.get("/metrics")).text

    assert response.status_code == 200
    assert "swordfish" not in response.json()["output"]
    assert response.headers["x-served-by"] == "gemini-3.5-flash"
    assert flagged_count(metrics) == 1


async def test_flag_mode_keeps_the_answer_and_counts_it(double: ProviderDouble, make_app: AppFactory) -> None:
    app = make_app(settings_for(double, keyword_filter_words="swordfish, 기밀"))  # comma-separated, as in .env
    double.set("gpt-4o-mini", Behaviour(text=LEAKY))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        response = await http.post("/fallback/invoke", json=QUESTION)
        metrics = (await http.get("/metrics")).text

    assert response.json()["output"] == LEAKY
    assert flagged_count(metrics) == 1


async def test_slow_calls_are_logged_as_json_lines(double: ProviderDouble, make_app: AppFactory) -> None:
    settings = settings_for(double, slow_log_threshold_s=0.2)
    app = make_app(settings)
    double.set("gpt-4o-mini", Behaviour(delay_s=0.3))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        slow = await http.post("/fallback/invoke", json=QUESTION)
        double.set("gpt-4o-mini", Behaviour())
        await http.post("/fallback/invoke", json=QUESTION)
    app.state.monitoring.slow_log.flush()

    assert settings.slow_log_path is not None
    (line,) = settings.slow_log_path.read_text().splitlines()
    entry = json.loads(line)
    assert entry["request_id"] == slow.headers["x-request-id"]
    assert entry["model"] == "gpt-4o-mini"
    assert entry["duration_s"] >= 0.3
