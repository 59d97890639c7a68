"""Fallbacks through the real OpenAI and Gemini SDKs against the provider double."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers.apps import AppFactory, calls_for, settings_for, sse_events
from tests.helpers.provider_double import Behaviour, ProviderDouble

QUESTION = {"input": {"question": "What is a circuit breaker?"}}


async def test_primary_503_falls_back_to_gemini_and_both_attempts_are_recorded(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=503))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 200
    assert response.json()["output"].startswith("gemini-3.5-flash answers:")
    assert response.headers["x-served-by"] == "gemini-3.5-flash"
    assert response.headers["x-fallback-rung"] == "1"
    calls = await calls_for(remote_app, response.headers["x-request-id"])
    assert [(c["model"], c["outcome"], c["cause"]) for c in calls] == [
        ("gpt-4o-mini", "error", "server_error"),
        ("gemini-3.5-flash", "ok", None),
    ]
    served = double.requests_for("gemini-3.5-flash")[0]
    assert calls[1]["input_tokens"] == served.input_tokens
    assert calls[1]["output_tokens"] == served.output_tokens
    assert len(double.requests_for("gpt-4o-mini")) == 1, "the SDK must not retry on its own"


async def test_rate_limited_primary_is_recorded_as_rate_limited(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=429, retry_after="7"))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 200
    causes = [c["cause"] for c in await calls_for(remote_app, response.headers["x-request-id"])]
    assert causes == ["rate_limited", None]


async def test_slow_primary_times_out_and_the_next_rung_answers(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set("gpt-4o-mini", Behaviour(delay_s=3.0))  # primary_timeout_s is 1.0 in tests

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 200
    calls = await calls_for(remote_app, response.headers["x-request-id"])
    assert calls[0]["cause"] == "timeout"
    assert 0.9 < calls[0]["duration_s"] < 2.5
    assert calls[1]["model"] == "gemini-3.5-flash"


async def test_gemini_failure_moves_to_gpt4(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=500))
    double.set("gemini-3.5-flash", Behaviour(fail_status=503, retry_after="3"))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 200
    assert response.headers["x-served-by"] == "gpt-4o"
    calls = await calls_for(remote_app, response.headers["x-request-id"])
    assert [(c["provider"], c["cause"]) for c in calls] == [
        ("openai", "server_error"),
        ("google_genai", "server_error"),
        ("openai", None),
    ]
    assert len(double.requests_for("gemini-3.5-flash")) == 1, "the Gemini SDK must not retry on its own"


async def test_gemini_4xx_are_classified_through_the_wrapper_langchain_puts_around_them(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    # langchain-google-genai raises GoogleRateLimitError etc. from the SDK's ClientError; a refused
    # key is Gemini's 400 INVALID_ARGUMENT: the server's to fix, not a 422 for the caller.
    app = make_app(settings_for(double, local_model_path=tmp_path / "missing.gguf"), own_engine=True)
    double.set("gpt-4o-mini", Behaviour(fail_status=503))
    double.set("gemini-3.5-flash", Behaviour(fail_status=429, retry_after="9"))
    double.set("gpt-4o", Behaviour(fail_status=503))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        limited = await http.post("/fallback/invoke", json=QUESTION)
        double.set("gemini-3.5-flash", Behaviour(reject_key="masked"))
        refused = await http.post("/fallback/invoke", json=QUESTION)

    assert limited.status_code == refused.status_code == 503
    assert [a["cause"] for a in limited.json()["attempts"]][1] == "rate_limited"
    assert limited.headers["retry-after"] == "9", "Gemini's Retry-After is read through the wrapper"
    assert [a["cause"] for a in refused.json()["attempts"]][1] == "auth"


async def test_every_rung_failing_answers_503_listing_each_attempt(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(settings_for(double, local_model_path=tmp_path / "missing.gguf"), own_engine=True)
    double.set("gpt-4o-mini", Behaviour(fail_status=429, retry_after="12"))
    double.set("gemini-3.5-flash", Behaviour(fail_status=503))
    double.set("gpt-4o", Behaviour(fail_status=401))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        response = await http.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "12"
    body = response.json()
    assert [(a["model"], a["cause"]) for a in body["attempts"]] == [
        ("gpt-4o-mini", "rate_limited"),
        ("gemini-3.5-flash", "server_error"),
        ("gpt-4o", "auth"),
        ("SmolLM2-135M-Instruct", "not_configured"),
    ]
    assert "Traceback" not in response.text
    assert "sk-test" not in response.text


async def test_provider_rejecting_the_input_is_not_retried_elsewhere(
    client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=400))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.status_code == 422
    assert response.json()["message"], response.text
    assert double.requests_for("gemini-3.5-flash") == []


async def test_stream_falls_back_before_the_first_chunk_and_records_streamed_usage(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=503))

    response = await client.post("/fallback/stream", json=QUESTION)

    events = sse_events(response.text)
    text = "".join(json.loads(data) for event, data in events if event == "data")
    assert text.startswith("gemini-3.5-flash answers:")
    assert events[-1][0] == "end"
    calls = await calls_for(remote_app, response.headers["x-request-id"])
    served = double.requests_for("gemini-3.5-flash")[0]
    assert served.stream
    assert (calls[1]["input_tokens"], calls[1]["output_tokens"]) == (served.input_tokens, served.output_tokens)
    assert calls[1]["first_token_s"] is not None


async def test_openai_stream_reports_usage(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    response = await client.post("/fallback/stream", json=QUESTION)

    assert response.status_code == 200
    served = double.requests_for("gpt-4o-mini")[0]
    assert served.body["stream_options"] == {"include_usage": True}
    call = (await calls_for(remote_app, response.headers["x-request-id"]))[0]
    assert (call["input_tokens"], call["output_tokens"]) == (served.input_tokens, served.output_tokens)
    assert call["cost_usd"] is not None and float(call["cost_usd"]) > 0


async def test_stream_where_every_rung_fails_ends_with_a_503_error_event(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(settings_for(double, local_model_path=tmp_path / "missing.gguf"), own_engine=True)
    for model in ("gpt-4o-mini", "gemini-3.5-flash", "gpt-4o"):
        double.set(model, Behaviour(fail_status=503))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        response = await http.post("/fallback/stream", json=QUESTION)

    ((_event, data),) = [e for e in sse_events(response.text) if e[0] == "error"]
    error = json.loads(data)
    assert error["status_code"] == 503
    assert [a["cause"] for a in error["attempts"]] == ["server_error"] * 3 + ["not_configured"]


async def test_quality_route_rejects_a_short_answer_and_the_next_model_answers(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set("gpt-4o-mini", Behaviour(text="Too short."))

    response = await client.post("/quality/invoke", json=QUESTION)

    assert response.json()["output"].startswith("gemini-3.5-flash answers:")
    calls = await calls_for(remote_app, response.headers["x-request-id"])
    # The model call itself succeeded; the answer was rejected after it.
    assert [c["model"] for c in calls] == ["gpt-4o-mini", "gemini-3.5-flash"]


async def test_quality_stream_never_shows_the_rejected_answer(
    client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(text="Too short, sorry."))

    response = await client.post("/quality/stream", json=QUESTION)

    text = "".join(json.loads(d) for e, d in sse_events(response.text) if e == "data")
    assert "Too short" not in text
    assert text.startswith("gemini-3.5-flash answers:")


@pytest.mark.parametrize(
    "alternative,model", [("openai", "gpt-4o-mini"), ("gpt4", "gpt-4o"), ("gemini", "gemini-3.5-flash")]
)
async def test_chat_uses_the_model_the_client_configures(
    client: httpx.AsyncClient, double: ProviderDouble, alternative: str, model: str
) -> None:
    payload = {**QUESTION, "config": {"configurable": {"llm_model": alternative, "llm_temperature": 0.2}}}

    response = await client.post("/chat/invoke", json=payload)

    assert response.headers["x-served-by"] == model
    sent = double.requests_for(model)[0].body
    temperature = sent.get("temperature", sent.get("generationConfig", {}).get("temperature"))
    assert temperature == pytest.approx(0.2)


async def test_chat_falls_back_to_the_local_model(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set("gemini-3.5-flash", Behaviour(fail_status=503))
    payload = {**QUESTION, "config": {"configurable": {"llm_model": "gemini"}}}

    response = await client.post("/chat/invoke", json=payload)

    assert response.status_code == 200
    assert response.headers["x-served-by"] == "SmolLM2-135M-Instruct"
    calls = await calls_for(remote_app, response.headers["x-request-id"])
    assert [(c["alternative"], c["outcome"]) for c in calls] == [("gemini", "error"), ("local", "ok")]
    assert calls[1]["output_tokens"] > 0


async def test_provider_rejecting_a_streamed_input_is_a_422_error_event(
    client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=400))

    response = await client.post("/fallback/stream", json=QUESTION)

    ((event, data),) = sse_events(response.text)
    assert event == "error"
    assert json.loads(data)["status_code"] == 422
    assert "rejected the request" in json.loads(data)["message"]
    assert double.requests_for("gemini-3.5-flash") == []
