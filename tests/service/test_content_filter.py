"""A provider's content-policy refusal is the caller's answer: it reaches the client as its own
error, on both doors, and no other model is asked, unless the operator lets it reroute."""

from __future__ import annotations

import httpx
import openai

from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.provider_double import Behaviour, ProviderDouble

REFUSING = Behaviour(fail_status=400, error_code="content_filter")
ASK = {"input": {"question": "Tell me something the filter dislikes"}}


async def test_a_content_filter_refusal_reaches_the_client_and_no_other_model_is_asked(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    double.set("gpt-4o-mini", REFUSING)
    app = make_app(settings_for(double))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        response = await http.post("/fallback/invoke", json=ASK)
        calls = (await http.get("/monitoring/calls")).json()["calls"]

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "content_filter"
    assert "content policy" in body["message"] and "content_filter" in body["message"]
    assert body["model"] == "gpt-4o-mini"
    assert "Traceback" not in response.text
    assert [(c["model"], c["cause"]) for c in calls] == [("gpt-4o-mini", "content_filter")]
    assert [s.model for s in double.served] == ["gpt-4o-mini"], "no second model was asked"


async def test_the_openai_door_answers_a_content_filter_refusal_as_openai_would(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    double.set("gpt-4o-mini", REFUSING)
    app = make_app(settings_for(double))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        client = openai.AsyncOpenAI(base_url="http://server/v1", api_key="none", http_client=http, max_retries=0)
        try:
            await client.chat.completions.create(model="openai", messages=[{"role": "user", "content": "hm"}])
        except openai.BadRequestError as refused:
            error = refused
        else:
            raise AssertionError("the refusal did not reach the client")

    assert error.status_code == 400
    assert error.code == "content_filter"
    assert len(double.served) == 1


async def test_an_operator_may_let_a_refusal_reroute_to_the_next_model(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    double.set("gpt-4o-mini", REFUSING)
    app = make_app(settings_for(double, reroute_content_filter=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        response = await http.post("/fallback/invoke", json=ASK)

    assert response.status_code == 200
    assert response.headers["x-served-by"] == "gemini-3.5-flash"
