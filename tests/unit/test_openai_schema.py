"""The OpenAI-compatible door's request parsing and error envelope, without an app."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from api.openai_errors import OpenAIErrorEnvelope, openai_error
from api.openai_schema import parse_request
from errors import RequestError

ASK = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}


def test_a_conversation_becomes_langchain_messages_in_order() -> None:
    request = parse_request(
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "DNS?"}]},
                {"role": "assistant", "content": "A naming system."},
                {"role": "developer", "content": "answer in English"},
                {"role": "user", "content": "And DHCP?", "name": "ann"},
            ],
        }
    )

    messages = request.langchain_messages()

    assert [type(m) for m in messages] == [SystemMessage, HumanMessage, AIMessage, SystemMessage, HumanMessage]
    assert [m.text for m in messages] == [
        "be brief",
        "What is DNS?",
        "A naming system.",
        "answer in English",
        "And DHCP?",
    ]
    assert messages[-1].name == "ann"
    assert request.text_chars() == sum(len(m.text) for m in messages)


def test_generation_options_use_openais_names_and_max_completion_tokens_wins() -> None:
    request = parse_request(
        {**ASK, "max_tokens": 50, "max_completion_tokens": 20, "top_p": 0.5, "seed": 7, "stop": "\n"}
    )

    assert request.generation_options() == {"max_tokens": 20, "top_p": 0.5, "seed": 7, "stop": ["\n"]}
    assert parse_request(ASK).generation_options() == {}


@pytest.mark.parametrize(
    ("extra", "param", "says"),
    [
        ({"n": 2}, "n", "above 1"),
        ({"functions": [{"name": "f"}]}, "functions", "not supported"),
        ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]}, "tools.0.function.name", "pattern"),
        ({"response_format": {"type": "xml"}}, "response_format.type", "'text', 'json_object'"),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages.0", "tool_call_id"),
        ({"logprobs": True}, "logprobs", "not supported"),
        ({"audio": {"voice": "alloy"}}, "audio", "not supported"),
        ({"temperature": 2.5}, "temperature", "less than or equal to 2"),
        ({"top_p": 1.5}, "top_p", "less than or equal to 1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"frobnicate": 1}, "frobnicate", "not a field"),
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": [{"role": "critic", "content": "x"}]}, "messages.0.role", "'system', 'developer', 'user'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content",
            "",
        ),
    ],
)
def test_what_the_door_cannot_honour_is_refused_naming_the_field(extra: dict[str, Any], param: str, says: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_request({**ASK, **extra})

    assert refused.value.details["parameter"].startswith(param)
    assert says in refused.value.message


WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}


def test_tools_and_a_response_format_say_what_the_model_must_do_and_reach_it_as_options() -> None:
    request = parse_request({**ASK, "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False})

    assert request.needs() == {"tools"}
    assert request.generation_options() == {"tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False}
    assert parse_request({**ASK, "tools": [WEATHER], "tool_choice": "none"}).needs() == set()
    structured = parse_request(
        {**ASK, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}
    )
    assert structured.needs() == {"structured_output"}
    assert structured.generation_options()["response_format"]["json_schema"] == {"name": "x", "schema": {}}
    assert parse_request({**ASK, "response_format": {"type": "text"}}).needs() == set()


def test_an_earlier_tool_call_and_its_answer_become_langchain_messages() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Seoul"}'}}
    request = parse_request(
        {
            "model": "openai",
            "messages": [
                {"role": "user", "content": "Weather in Seoul?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        }
    )

    _, asked, answered = request.langchain_messages()

    assert isinstance(asked, AIMessage) and asked.tool_calls[0]["args"] == {"city": "Seoul"}
    assert isinstance(answered, ToolMessage) and answered.tool_call_id == "call_1"
    with pytest.raises(RequestError, match="not a JSON object"):
        broken = {**call, "function": {"name": "weather", "arguments": "{oops"}}
        parse_request({**ASK, "messages": [{"role": "assistant", "tool_calls": [broken]}]}).langchain_messages()


def test_the_sdks_neutral_defaults_are_accepted() -> None:
    neutral = {"n": 1, "logprobs": False, "presence_penalty": 0, "frequency_penalty": 0.0, "stream_options": None}

    assert parse_request({**ASK, **neutral}).model == "openai"


def test_our_error_body_becomes_openais_envelope_with_its_details() -> None:
    ours = {"error": "model_not_allowed", "message": "the free tier may not use gpt4", "allowed": ["local"]}

    assert openai_error(403, ours) == {
        "error": {
            "message": "the free tier may not use gpt4",
            "type": "permission_error",
            "param": None,
            "code": "model_not_allowed",
            "allowed": ["local"],
        }
    }
    assert openai_error(503, {"error": "all_models_failed", "message": "m"})["error"]["type"] == "server_error"


async def test_the_envelope_rewrites_v1_errors_only_and_maps_422_to_400() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps({"error": "invalid_request", "message": "bad", "parameter": "model"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(path: str) -> tuple[int, dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await OpenAIErrorEnvelope(app)({"type": "http", "path": path}, None, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    status, body = await answer("/v1/chat/completions")
    assert status == 400
    assert body["error"] == {
        "message": "bad",
        "type": "invalid_request_error",
        "param": "model",
        "code": "invalid_request",
    }
    assert await answer("/chat/invoke") == (422, {"error": "invalid_request", "message": "bad", "parameter": "model"})
