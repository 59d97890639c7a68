"""Request policy and adaptive routing through the HTTP API: ``llm_model=auto``, ``/adaptive``,
the time-of-day prompt style, the temperature by question, and learning from feedback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest

from settings import Settings
from tests.helpers.apps import EVENING, AppFactory, policy_kit, settings_for
from tests.helpers.provider_double import ProviderDouble
from wiring.policy import PolicyParts

CODE_QUESTION = "Why does my Python function raise a KeyError when I read dict['name']? def f(d): return d['name']"
SMALL_TALK = "hi, how are you today?"
FACTUAL = "What is the capital of Australia?"


@asynccontextmanager
async def serve(make_app: AppFactory, settings: Settings, kit: PolicyParts) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(settings, policy=kit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        yield http


@pytest.fixture
async def greedy(double: ProviderDouble, make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A server whose router never explores: each question type gets its best model."""
    settings = settings_for(double, routing_exploration=0.0)
    async with serve(make_app, settings, policy_kit(settings)) as http:
        yield http


def auto(question: str) -> dict[str, object]:
    return {"input": {"question": question}, "config": {"configurable": {"llm_model": "auto"}}}


async def test_auto_sends_code_and_small_talk_to_different_models_and_says_why(greedy: httpx.AsyncClient) -> None:
    code = await greedy.post("/chat/invoke", json=auto(CODE_QUESTION))
    chat = await greedy.post("/chat/invoke", json=auto(SMALL_TALK))

    assert code.status_code == chat.status_code == 200
    assert code.headers["x-served-by"] == "gpt-4o"
    assert chat.headers["x-served-by"] == "SmolLM2-135M-Instruct"
    calls = (await greedy.get("/monitoring/calls")).json()["calls"]
    routing = {call["metadata"]["routing"]["question_type"]: call["metadata"]["routing"] for call in calls}
    assert routing["code"]["model"] == "gpt4"
    assert routing["smalltalk"]["model"] == "local"
    for kind, decision in routing.items():
        assert kind in decision["model_reason"] and "best estimated reward" in decision["model_reason"]
    recent = (await greedy.get("/monitoring/routing")).json()["recent"]
    assert [d["model"] for d in recent[:2]] == ["local", "gpt4"]


async def test_adaptive_route_always_routes_and_refuses_a_model_choice(greedy: httpx.AsyncClient) -> None:
    routed = await greedy.post("/adaptive/invoke", json={"input": {"question": CODE_QUESTION}})
    chosen = await greedy.post("/adaptive/invoke", json=auto(CODE_QUESTION))

    assert routed.status_code == 200 and routed.headers["x-served-by"] == "gpt-4o"
    assert chosen.status_code == 422
    assert "llm_model" in chosen.json()["message"]


async def test_auto_stays_within_the_open_tier_models(double: ProviderDouble, make_app: AppFactory) -> None:
    settings = settings_for(double, routing_exploration=0.0, open_tier="free")
    async with serve(make_app, settings, policy_kit(settings)) as http:
        response = await http.post("/chat/invoke", json=auto(CODE_QUESTION))

    assert response.status_code == 200
    assert response.headers["x-served-by"] == "gpt-4o-mini", "gpt-4o is above the free tier; gpt-4o-mini is next"


async def test_policy_picks_style_by_time_of_day_and_temperature_by_question(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    settings = settings_for(double, policy_prompt_styles="07-18=default,18-23=detailed,23-07=concise")
    morning = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 10:00 in Seoul
    seoul = settings.model_copy(update={"policy_timezone": "Asia/Seoul"})
    async with serve(make_app, settings, policy_kit(settings, now=EVENING)) as http:
        evening_code = await http.post("/chat/invoke", json={"input": {"question": CODE_QUESTION}})
        creative = await http.post("/chat/invoke", json={"input": {"question": "Write a short poem about autumn"}})
    async with serve(make_app, seoul, policy_kit(seoul, now=morning)) as http:
        seoul_morning = await http.post("/chat/invoke", json={"input": {"question": FACTUAL}})

    assert evening_code.status_code == creative.status_code == seoul_morning.status_code == 200
    code_body, poem_body, seoul_body = (s.body for s in double.served)
    assert "Format:" in code_body["messages"][0]["content"], "20:00 UTC is the detailed style's time"
    assert "Format:" not in seoul_body["messages"][0]["content"], "10:00 in Seoul is the default style's time"
    assert code_body["temperature"] < poem_body["temperature"], "code asks for care, a poem for room"


async def test_the_clients_own_choices_win_over_policy(double: ProviderDouble, make_app: AppFactory) -> None:
    settings = settings_for(double)
    async with serve(make_app, settings, policy_kit(settings, now=EVENING)) as http:
        payload = {
            "input": {"question": CODE_QUESTION},
            "config": {"configurable": {"prompt_style": "concise", "llm_temperature": 1.5, "llm_model": "gemini"}},
        }
        response = await http.post("/chat/invoke", json=payload)
        calls = (await http.get("/monitoring/calls")).json()["calls"]

    assert response.status_code == 200
    served = double.served[0]
    assert served.provider == "gemini"
    assert served.body["generationConfig"]["temperature"] == 1.5
    assert "Answer in one sentence" in str(served.body["contents"])
    routing = calls[0]["metadata"]["routing"]
    assert routing["model_reason"] == routing["prompt_style_reason"] == routing["temperature_reason"]
    assert routing["model_reason"] == "set by the client"


async def test_feedback_on_an_unknown_run_is_404_and_a_bad_score_422(greedy: httpx.AsyncClient) -> None:
    unknown = await greedy.post("/feedback", json={"run_id": "no-such-run", "score": 1})
    bad = await greedy.post("/feedback", json={"run_id": "x", "score": 7})

    assert unknown.status_code == 404 and "run_id" in unknown.json()["message"]
    assert bad.status_code == 422 and "score" in bad.json()["message"]
