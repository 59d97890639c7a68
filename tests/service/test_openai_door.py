"""The OpenAI-compatible door (``/v1/chat/completions``, ``/v1/models``) through the clients people
point at it: the official ``openai`` SDK and LangChain's ``ChatOpenAI``, over the app in process,
with the provider double behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI

from tests.helpers.apps import AppFactory, calls_for, policy_kit, settings_for, sse_events
from tests.helpers.keys import KEYS, as_tier, keyed_settings, limited_tiers
from tests.helpers.provider_double import Behaviour, ProviderDouble

BASE_URL = "http://server/v1"
# What each tier may send as ``model`` (GET /v1/models): its alternatives, auto, and the ladders.
FREE_MODELS = ["openai", "local", "auto", "fallback", "quality"]
EVERY_MODEL = ["openai", "gpt4", "gemini", "local", "auto", "fallback", "quality"]


def sdk(http: httpx.AsyncClient, api_key: str = "none", **options: Any) -> AsyncOpenAI:
    """The official SDK on ``http`` (the app in process); no retries of its own."""
    return AsyncOpenAI(base_url=BASE_URL, api_key=api_key, http_client=http, max_retries=0, **options)


def asking(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def serving(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server")


def data_events(text: str) -> list[str]:
    return [data for event, data in sse_events(text) if event == "message"]


# -- answers -------------------------------------------------------------------------------------


async def test_a_plain_answer_names_the_model_that_answered_reports_usage_and_a_run_id_feedback_accepts(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    answer = await sdk(shared_client).chat.completions.create(
        model="openai", messages=asking("What is a write-ahead log?")
    )

    served = double.requests_for("gpt-4o-mini")[0]
    assert answer.object == "chat.completion"
    assert answer.model == "gpt-4o-mini"
    (choice,) = answer.choices
    assert choice.message.role == "assistant"
    assert choice.message.content.startswith("gpt-4o-mini answers: What is a write-ahead log?")
    assert choice.finish_reason == "stop"
    usage = answer.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (served.input_tokens, served.output_tokens)
    assert usage.total_tokens == served.input_tokens + served.output_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0
    feedback = await shared_client.post("/feedback", json={"run_id": answer.id, "score": 1.0})
    assert feedback.status_code == 200, feedback.text
    assert feedback.json()["learned"]["alternative"] == "openai"


async def test_every_turn_of_a_conversation_reaches_the_provider_in_order(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    conversation = [
        {"role": "system", "content": "You answer in one line."},
        {"role": "user", "content": "What is a mutex?"},
        {"role": "assistant", "content": "A lock that one thread holds at a time."},
        {"role": "user", "content": "And a semaphore?"},
    ]

    answer = await sdk(shared_client).chat.completions.create(model="openai", messages=conversation)

    assert answer.model == "gpt-4o-mini"
    (served,) = double.requests_for("gpt-4o-mini")
    received = [(m["role"], m["content"]) for m in served.body["messages"]]
    assert received == [(m["role"], m["content"]) for m in conversation]


# -- streams -------------------------------------------------------------------------------------


async def test_a_stream_is_chunks_whose_text_is_the_plain_answer_with_usage_last_when_asked(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    client = sdk(shared_client)
    question = asking("What is a consistent hash ring?")

    stream = await client.chat.completions.create(
        model="openai", messages=question, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    plain = await client.chat.completions.create(model="openai", messages=question)

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert {chunk.model for chunk in chunks} == {"gpt-4o-mini"}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == plain.choices[0].message.content
    *answering, usage_chunk = chunks
    assert answering[-1].choices[0].finish_reason == "stop"
    assert [chunk.usage for chunk in answering] == [None] * len(answering), "usage comes once, last"
    assert usage_chunk.choices == []
    streamed = double.requests_for("gpt-4o-mini")[0]
    assert streamed.stream
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (
        streamed.input_tokens,
        streamed.output_tokens,
    )
    assert usage_chunk.usage.total_tokens == streamed.input_tokens + streamed.output_tokens
    # The same last chunk says how the answer came to be; the SDK keeps the field as an extra.
    provenance = (usage_chunk.model_extra or {})["provenance"]
    assert (provenance["outcome"], provenance["contributors"][0]["model"]) == ("complete", "gpt-4o-mini")


async def test_a_stream_without_include_usage_has_no_usage_and_ends_with_done(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    body = {"model": "openai", "messages": asking("What is a bloom filter?"), "stream": True}

    response = await shared_client.post("/v1/chat/completions", json=body)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    *chunks, told, last = data_events(response.text)
    assert last == "[DONE]"
    parsed = [json.loads(chunk) for chunk in chunks]
    assert {chunk["object"] for chunk in parsed} == {"chat.completion.chunk"}
    assert all("usage" not in chunk for chunk in parsed), parsed
    assert all(chunk["choices"] for chunk in parsed)
    # The last chunk before [DONE] says how the answer came to be, and has no usage either.
    final = json.loads(told)
    assert (final["choices"], "usage" in final) == ([], False)
    assert final["provenance"]["outcome"] == "complete"
    assert [c["model"] for c in final["provenance"]["contributors"]] == ["gpt-4o-mini"]
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in parsed)
    assert text.startswith("gpt-4o-mini answers: What is a bloom filter?")


async def test_a_stream_cut_after_text_that_is_not_continued_ends_with_an_openai_error_event_and_no_done(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, continue_streams=False))
    double.set("gpt-4o-mini", Behaviour(cut_stream=True))
    body = {"model": "openai", "messages": asking("What is a vector clock?"), "stream": True}

    async with serving(app) as http:
        raw = await http.post("/v1/chat/completions", json=body)
        parts: list[str] = []
        with pytest.raises(openai.APIError) as broken:
            async for chunk in await sdk(http).chat.completions.create(**body):
                parts.append(chunk.choices[0].delta.content or "")

    assert raw.status_code == 200
    events = data_events(raw.text)
    assert "[DONE]" not in events
    *chunks, last = (json.loads(event) for event in events)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text.startswith("gpt-4o-mini answers: What is a vector clock?"), "text went out before the cut"
    assert not text.endswith("long enough to pass checks."), "the cut came before the end of the answer"
    assert set(last) == {"error"}
    error = last["error"]
    assert error["code"] == "stream_interrupted"
    assert error["type"] == "server_error"
    assert error["message"]
    assert error["model"] == "gpt-4o-mini"
    assert {"message", "type", "param", "code"} <= set(error)
    assert "".join(parts) == text, "the SDK saw the same text, then raised"
    assert broken.value.body == error


# -- the ladders ---------------------------------------------------------------------------------


async def test_the_fallback_ladder_through_v1_answers_from_the_backup_and_says_so_in_headers(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double))
    double.set("gpt-4o-mini", Behaviour(fail_status=503))

    async with serving(app) as http:
        raw = await sdk(http).chat.completions.with_raw_response.create(
            model="fallback", messages=asking("What is a circuit breaker?")
        )

    answer = raw.parse()
    assert answer.model == "gemini-3.5-flash"
    assert answer.choices[0].message.content.startswith("gemini-3.5-flash answers:")
    assert raw.headers["x-served-by"] == "gemini-3.5-flash"
    assert raw.headers["x-fallback-rung"] == "1"
    assert raw.headers["x-attempts"] == "2"
    assert raw.headers["x-request-id"]
    calls = await calls_for(app, raw.headers["x-request-id"])
    assert [(c["model"], c["outcome"], c["route"]) for c in calls] == [
        ("gpt-4o-mini", "error", "fallback"),
        ("gemini-3.5-flash", "ok", "fallback"),
    ]


async def test_every_rung_failing_is_503_with_retry_after_and_each_attempt_in_the_envelope(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, faults={"local": {"kind": "status", "status": 503}}))
    double.set("gpt-4o-mini", Behaviour(fail_status=503, retry_after="12"))
    double.set("gemini-3.5-flash", Behaviour(fail_status=503))
    double.set("gpt-4o", Behaviour(fail_status=503))

    async with serving(app) as http:
        with pytest.raises(openai.InternalServerError) as failed:
            await sdk(http).chat.completions.create(model="fallback", messages=asking("What is a quorum?"))

    error = failed.value
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "12"
    assert error.type == "server_error"
    assert [(a["model"], a["cause"]) for a in error.body["attempts"]] == [
        ("gpt-4o-mini", "server_error"),
        ("gemini-3.5-flash", "server_error"),
        ("gpt-4o", "server_error"),
        ("SmolLM2-135M-Instruct", "server_error"),
    ]
    assert "sk-test" not in error.response.text
    assert "Traceback" not in error.response.text


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_fields, parameter",
    [
        ({"extra_body": {"colour": "blue"}}, "colour"),
        ({"n": 2}, "n"),
        ({"model": "local", "tools": [{"type": "function", "function": {"name": "lookup"}}]}, "tools"),
        ({"model": "local", "response_format": {"type": "json_object"}}, "response_format"),
        ({"functions": [{"name": "lookup"}]}, "functions"),
        ({"temperature": 5}, "temperature"),
        ({"messages": []}, "messages"),
    ],
    ids=["unknown-field", "n-2", "tools-on-local", "json-on-local", "functions", "temperature-5", "no-messages"],
)
async def test_a_request_the_server_cannot_honour_is_a_bad_request_naming_the_field(
    shared_client: httpx.AsyncClient, double: ProviderDouble, request_fields: dict[str, Any], parameter: str
) -> None:
    fields = {"model": "openai", "messages": asking("What is a lease?"), **request_fields}

    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(shared_client).chat.completions.create(**fields)

    error = refused.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    assert error.param == parameter
    assert parameter in error.message
    assert double.served == []


async def test_a_body_that_is_not_json_is_a_bad_request_in_the_envelope(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    response = await shared_client.post(
        "/v1/chat/completions",
        content=b'{"model": "openai", "messages": [',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert double.served == []


async def test_no_key_and_a_bad_key_are_authentication_errors(
    shared_keyed: httpx.AsyncClient, double: ProviderDouble
) -> None:
    guessed = sdk(shared_keyed, "lsk_guessed-0123456789")

    with pytest.raises(openai.AuthenticationError) as no_key:
        await sdk(shared_keyed).chat.completions.create(
            model="openai", messages=asking("Who am I?"), extra_headers={"Authorization": openai.Omit()}
        )
    with pytest.raises(openai.AuthenticationError) as bad_key:
        await guessed.chat.completions.create(model="openai", messages=asking("Who am I?"))

    assert "authorization" not in no_key.value.request.headers
    assert no_key.value.type == bad_key.value.type == "authentication_error"
    assert "Bearer" in no_key.value.message
    assert "not valid" in bad_key.value.message
    assert "lsk_guessed" not in bad_key.value.response.text
    assert double.served == []


async def test_a_model_above_the_tier_is_permission_denied_listing_the_tiers_models(
    shared_keyed: httpx.AsyncClient, double: ProviderDouble
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await sdk(shared_keyed, KEYS["free"]).chat.completions.create(model="gpt4", messages=asking("Hi?"))

    error = refused.value
    assert error.type == "permission_error"
    assert error.code == "model_not_allowed"
    assert error.body["allowed"] == ["openai", "local", "auto"]
    assert double.served == []


async def test_an_unknown_model_is_not_found_listing_the_callers_models(
    shared_keyed: httpx.AsyncClient, double: ProviderDouble
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk(shared_keyed, KEYS["free"]).chat.completions.create(model="gpt-9", messages=asking("Hi?"))

    error = missing.value
    assert error.type == "invalid_request_error"
    assert error.param == "model"
    assert error.body["allowed"] == FREE_MODELS
    assert "gpt-9" in error.message
    assert double.served == []


async def test_a_conversation_over_the_prompt_limit_is_413_in_the_envelope(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, max_prompt_chars=100))
    turn = "Tell me about replication " * 2  # 52 characters; no one turn is over the limit
    conversation = [
        {"role": "user", "content": turn},
        {"role": "assistant", "content": turn},
        {"role": "user", "content": turn},
    ]

    async with serving(app) as http:
        with pytest.raises(openai.APIStatusError) as refused:
            await sdk(http).chat.completions.create(model="openai", messages=conversation)

    error = refused.value
    assert error.status_code == 413
    assert error.type == "invalid_request_error"
    assert error.body["limit_chars"] == 100
    assert "156 characters" in error.message
    assert set(error.response.json()) == {"error"}
    assert double.served == []


async def test_requests_over_the_per_minute_limit_are_rate_limit_errors_with_retry_after(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(keyed_settings(double, tmp_path, tiers=limited_tiers(requests_per_minute=1)))

    async with serving(app) as http:
        client = sdk(http, KEYS["pro"])
        first = await client.chat.completions.create(model="openai", messages=asking("What is a token bucket?"))
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="openai", messages=asking("What is a token bucket?"))

    assert first.model == "gpt-4o-mini"
    error = limited.value
    assert error.status_code == 429
    assert error.type == "rate_limit_error"
    assert error.body["limit"] == "requests_per_minute"
    # A sliding window: the last minute's count weighs on this one until it has gone by (up to two minutes).
    assert 1 <= int(error.response.headers["retry-after"]) <= 2 * 60
    assert len(double.served) == 1


# -- models and keys -----------------------------------------------------------------------------


async def test_the_model_list_is_what_the_callers_tier_may_use(shared_keyed: httpx.AsyncClient) -> None:
    free = await sdk(shared_keyed, KEYS["free"]).models.list()
    enterprise = await sdk(shared_keyed, KEYS["enterprise"]).models.list()

    assert [model.id for model in free.data] == FREE_MODELS
    assert [model.id for model in enterprise.data] == EVERY_MODEL
    assert {model.object for model in enterprise.data} == {"model"}


async def test_a_model_above_the_tier_is_not_found_by_id_but_found_by_a_tier_that_has_it(
    shared_keyed: httpx.AsyncClient,
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk(shared_keyed, KEYS["free"]).models.retrieve("gpt4")
    card = await sdk(shared_keyed, KEYS["enterprise"]).models.retrieve("gpt4")

    assert missing.value.body["allowed"] == FREE_MODELS
    assert (card.id, card.object) == ("gpt4", "model")


async def test_a_bearer_key_from_the_sdk_identifies_its_owner(
    shared_keyed: httpx.AsyncClient, double: ProviderDouble
) -> None:
    raw = await sdk(shared_keyed, KEYS["pro"]).chat.completions.with_raw_response.create(
        model="openai", messages=asking("Whose question is this?")
    )

    assert raw.http_request.headers["authorization"] == f"Bearer {KEYS['pro']}"
    assert "x-api-key" not in raw.http_request.headers
    assert raw.parse().model == "gpt-4o-mini"
    listed = await shared_keyed.get(
        "/monitoring/calls", params={"request_id": raw.headers["x-request-id"]}, headers=as_tier("pro")
    )
    (call,) = listed.json()["calls"]
    assert (call["metadata"]["user_id"], call["metadata"]["tier"]) == ("bob", "pro")
    assert call["metadata"]["door"] == "openai"


# -- one record, whichever door ------------------------------------------------------------------

_PER_REQUEST = ("run_id", "root_run_id", "request_id", "started_at", "duration_s", "first_token_s")
_PER_REQUEST_METADATA = ("door", "request_id", "root_run_id", "call_ticket")


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in record.items() if key not in _PER_REQUEST}
    metadata = {key: value for key, value in record["metadata"].items() if key not in _PER_REQUEST_METADATA}
    routing = dict(metadata.get("routing") or {})
    routing.pop("classify_us", None)  # how long classifying took
    return {**kept, "metadata": {**metadata, "routing": routing}}


async def test_the_same_question_through_either_door_makes_the_same_call_record_but_the_door(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    settings = settings_for(double)
    app = make_app(settings, policy=policy_kit(settings))  # the prompt style follows a stopped clock
    question = "What is a vector clock?"
    # /chat's default prompt around the question, sent as is through the OpenAI door.
    prompt = f"Please answer the following question: {question}"

    async with serving(app) as http:
        raw = await sdk(http).chat.completions.with_raw_response.create(model="openai", messages=asking(prompt))
        langserve = await http.post(
            "/chat/invoke", json={"input": {"question": question}, "config": {"configurable": {"llm_model": "openai"}}}
        )

    assert langserve.status_code == 200, langserve.text
    bodies = [served.body["messages"] for served in double.requests_for("gpt-4o-mini")]
    assert bodies[0] == bodies[1], "both doors sent the provider the same conversation"
    (through_v1,) = await calls_for(app, raw.headers["x-request-id"])
    (through_chat,) = await calls_for(app, langserve.headers["x-request-id"])
    assert through_v1["metadata"]["door"] == "openai"
    assert through_chat["metadata"]["door"] == "langserve"
    for record in (through_v1, through_chat):
        assert (record["route"], record["ladder"], record["rung"], record["model"], record["outcome"]) == (
            "chat",
            "chat:openai",
            0,
            "gpt-4o-mini",
            "ok",
        )
    assert through_v1["input_tokens"] == raw.parse().usage.prompt_tokens
    assert through_v1["cost_usd"] is not None
    assert _comparable(through_v1) == _comparable(through_chat)


# -- LangChain's ChatOpenAI ----------------------------------------------------------------------


def chat_openai(http: httpx.AsyncClient) -> ChatOpenAI:
    return ChatOpenAI(
        model="openai", base_url=BASE_URL, api_key="none", http_async_client=http, max_retries=0, stream_usage=True
    )


async def test_langchains_chat_openai_invokes_through_v1_with_usage(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    message = await chat_openai(shared_client).ainvoke("What is a saga in microservices?")

    served = double.requests_for("gpt-4o-mini")[0]
    assert message.text.startswith("gpt-4o-mini answers: What is a saga in microservices?")
    assert message.response_metadata["model_name"] == "gpt-4o-mini"
    usage = message.usage_metadata
    assert usage is not None
    assert (usage["input_tokens"], usage["output_tokens"]) == (served.input_tokens, served.output_tokens)
    assert usage["total_tokens"] == served.input_tokens + served.output_tokens


async def test_langchains_chat_openai_streams_through_v1_with_usage(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    model = chat_openai(shared_client)
    question = "What is an idempotency key?"

    chunks = [chunk async for chunk in model.astream(question)]
    plain = await model.ainvoke(question)

    assert len(chunks) > 2, "the answer came in pieces"
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.text == plain.text
    streamed = next(served for served in double.requests_for("gpt-4o-mini") if served.stream)
    usage = merged.usage_metadata
    assert usage is not None
    assert (usage["input_tokens"], usage["output_tokens"]) == (streamed.input_tokens, streamed.output_tokens)
    assert usage["total_tokens"] == streamed.input_tokens + streamed.output_tokens
