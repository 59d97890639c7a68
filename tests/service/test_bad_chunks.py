"""Stream chunks that are not JSON, through the real OpenAI and Gemini SDKs against the provider
double: OpenAI's are skipped and counted (on the call's record and in /metrics) up to
``max_bad_chunks``, past it the stream breaks as ``malformed_stream``; google-genai cannot go on
after one, and its call fails as ``malformed_stream`` too."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from tests.helpers.apps import AppFactory, calls_for, settings_for, sse_events
from tests.helpers.provider_double import Behaviour, Fault, ProviderDouble

QUESTION = {"input": {"question": "What is a circuit breaker?"}}
PRIMARY, SECOND, THIRD = "gpt-4o-mini", "gemini-3.5-flash", "gpt-4o"
ANSWER = "A circuit breaker stops calls to a failing service for a while, then lets one through to test it."


def streamed_text(response: httpx.Response) -> str:
    events = sse_events(response.text)
    assert events[-1][0] == "end", response.text
    return "".join(json.loads(data) for event, data in events if event == "data")


async def test_a_bad_chunk_is_skipped_the_answer_is_whole_and_the_skip_is_counted(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set(PRIMARY, Behaviour(text=ANSWER, fault_for=lambda _: Fault(bad_after=2, bad_chunks=1)))

    response = await client.post("/fallback/stream", json=QUESTION)

    assert streamed_text(response) == ANSWER
    (call,) = await calls_for(remote_app, response.headers["x-request-id"])
    assert (call["model"], call["outcome"], call["cause"]) == (PRIMARY, "ok", None)
    assert call["metadata"]["bad_chunks"] == 1
    served = double.requests_for(PRIMARY)[0]
    assert (call["input_tokens"], call["output_tokens"]) == (served.input_tokens, served.output_tokens)
    metrics = (await client.get("/metrics")).text
    assert f'llm_stream_bad_chunks_total{{model="{PRIMARY}"}} 1.0' in metrics


async def test_bad_chunks_behind_an_invoke_are_skipped_up_to_the_limit(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set(PRIMARY, Behaviour(text=ANSWER, fault_for=lambda _: Fault(bad_after=1, bad_chunks=3)))

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.json()["output"] == ANSWER
    (call,) = await calls_for(remote_app, response.headers["x-request-id"])
    assert (call["outcome"], call["metadata"]["bad_chunks"]) == ("ok", 3)


async def test_a_clean_stream_records_no_bad_chunks(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    response = await client.post("/fallback/stream", json=QUESTION)

    (call,) = await calls_for(remote_app, response.headers["x-request-id"])
    assert "bad_chunks" not in call["metadata"]
    assert "llm_stream_bad_chunks_total{" not in (await client.get("/metrics")).text


async def test_more_bad_chunks_than_the_limit_break_the_stream_and_the_next_rung_answers(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, max_bad_chunks=2))
    double.set(PRIMARY, Behaviour(fault_for=lambda _: Fault(bad_after=0, bad_chunks=3)))  # before the first word

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        response = await http.post("/fallback/stream", json=QUESTION)
        metrics = (await http.get("/metrics")).text

    assert streamed_text(response).startswith(f"{SECOND} answers:")
    calls = await calls_for(app, response.headers["x-request-id"])
    assert [(c["model"], c["outcome"], c["cause"]) for c in calls] == [
        (PRIMARY, "error", "malformed_stream"),
        (SECOND, "ok", None),
    ]
    assert "3 stream chunks that are not JSON" in calls[0]["error"]
    assert f'llm_errors_total{{cause="malformed_stream",model="{PRIMARY}"}} 1.0' in metrics


async def test_a_bad_chunk_from_gemini_fails_its_call_as_a_malformed_stream(
    client: httpx.AsyncClient, double: ProviderDouble, remote_app: FastAPI
) -> None:
    double.set(PRIMARY, Behaviour(fail_status=503))
    double.set(SECOND, Behaviour(fault_for=lambda _: Fault(bad_after=1, bad_chunks=1)))  # after its first piece

    response = await client.post("/fallback/invoke", json=QUESTION)

    assert response.json()["output"].startswith(f"{THIRD} answers:")
    calls = await calls_for(remote_app, response.headers["x-request-id"])
    assert [(c["model"], c["cause"]) for c in calls] == [
        (PRIMARY, "server_error"),
        (SECOND, "malformed_stream"),
        (THIRD, None),
    ]
