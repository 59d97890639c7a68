"""Tools and structured output through the OpenAI-compatible door: passed to the rungs whose model
can use them, skipped (cause ``unsupported``) on the embedded model, refused with a 400 when no
model the request may use could answer, and the model's tool calls relayed as OpenAI sends them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI

from tests.helpers.apps import AppFactory, policy_kit, settings_for
from tests.helpers.provider_double import Behaviour, ProviderDouble

BASE_URL = "http://server/v1"
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Today's weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Seoul?"}]
SEOUL = {"city": "Seoul"}


def sdk(http: httpx.AsyncClient) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=BASE_URL, api_key="none", http_client=http, max_retries=0)


async def test_tools_reach_the_remote_model_and_its_tool_call_comes_back_as_openais(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(tool_calls=[("weather", SEOUL)]))

    answer = await sdk(shared_client).chat.completions.create(
        model="openai", messages=ASK, tools=[WEATHER], tool_choice="required"
    )

    (choice,) = answer.choices
    assert choice.finish_reason == "tool_calls"
    (called,) = choice.message.tool_calls or []
    assert called.type == "function" and called.function.name == "weather"
    assert json.loads(called.function.arguments) == SEOUL
    served = double.requests_for("gpt-4o-mini")[-1]
    assert served.tools == ["weather"]
    assert served.body["tool_choice"] == "required"


async def test_a_streamed_tool_call_arrives_in_pieces_that_join_to_its_arguments(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(tool_calls=[("weather", SEOUL)]))

    stream = await sdk(shared_client).chat.completions.create(
        model="openai", messages=ASK, tools=[WEATHER], stream=True, stream_options={"include_usage": True}
    )
    names, pieces, finishes, usage = [], [], [], None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finishes.append(choice.finish_reason)
            for delta in choice.delta.tool_calls or []:
                names += [delta.function.name] if delta.function and delta.function.name else []
                pieces.append(delta.function.arguments if delta.function else "")

    assert names == ["weather"]
    assert len([p for p in pieces if p]) >= 2, "the arguments came in pieces, as OpenAI streams them"
    assert json.loads("".join(p or "" for p in pieces)) == SEOUL
    assert finishes[-1] == "tool_calls"
    assert usage is not None and usage.completion_tokens > 0


async def test_a_ladder_skips_the_model_that_cannot_call_tools_and_says_why(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double))
    for model in ("gpt-4o-mini", "gemini-3.5-flash", "gpt-4o"):
        double.set(model, Behaviour(fail_status=503))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        with pytest.raises(openai.InternalServerError) as failed:
            await sdk(http).chat.completions.create(model="fallback", messages=ASK, tools=[WEATHER])
        calls = (await http.get("/monitoring/calls")).json()["calls"]

    attempts = {a["alternative"]: a["cause"] for a in failed.value.body["attempts"]}  # type: ignore[index]
    assert attempts == {
        "openai": "server_error",
        "gemini": "server_error",
        "gpt4": "server_error",
        "local": "unsupported",
    }
    assert "SmolLM2" not in {c["model"] for c in calls}, "the local model was never called"


async def test_the_fallback_rung_that_can_call_tools_answers_with_its_call(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(fail_status=503))
    double.set("gemini-3.5-flash", Behaviour(tool_calls=[("weather", SEOUL)]))

    response = await sdk(shared_client).chat.completions.with_raw_response.create(
        model="fallback", messages=ASK, tools=[WEATHER]
    )
    answer = response.parse()

    assert answer.model == "gemini-3.5-flash"
    assert response.headers["x-fallback-rung"] == "1"
    (called,) = answer.choices[0].message.tool_calls or []
    assert (called.function.name, json.loads(called.function.arguments)) == ("weather", SEOUL)
    assert double.requests_for("gemini-3.5-flash")[-1].tools == ["weather"]


async def test_auto_with_tools_routes_only_among_the_models_that_can(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    settings = settings_for(double, routing_exploration=0.0)
    app = make_app(settings, policy=policy_kit(settings))
    small_talk = [{"role": "user", "content": "hi, how are you today?"}]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        plain = await sdk(http).chat.completions.create(model="auto", messages=small_talk)
        with_tools = await sdk(http).chat.completions.create(model="auto", messages=small_talk, tools=[WEATHER])

    assert plain.model == "SmolLM2-135M-Instruct", "small talk goes to the local model"
    assert with_tools.model != "SmolLM2-135M-Instruct"


async def test_a_conversation_goes_on_with_the_tools_answer(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    call = {"id": "call_7", "type": "function", "function": {"name": "weather", "arguments": json.dumps(SEOUL)}}
    conversation: list[Any] = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_7", "content": "sunny, 21 °C"},
    ]

    answer = await sdk(shared_client).chat.completions.create(model="openai", messages=conversation, tools=[WEATHER])

    assert answer.choices[0].finish_reason == "stop"
    sent = double.requests_for("gpt-4o-mini")[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "weather", "arguments": json.dumps(SEOUL)}
    assert (sent[2]["tool_call_id"], sent[2]["content"]) == ("call_7", "sunny, 21 °C")


@pytest.mark.parametrize("model", ["openai", "gemini"])
async def test_a_json_response_format_reaches_the_provider_in_its_own_terms(
    shared_client: httpx.AsyncClient, double: ProviderDouble, model: str
) -> None:
    name = {"openai": "gpt-4o-mini", "gemini": "gemini-3.5-flash"}[model]
    double.set(name, Behaviour(text='{"city": "Seoul", "sky": "clear"}'))

    answer = await sdk(shared_client).chat.completions.create(
        model=model, messages=ASK, response_format={"type": "json_object"}
    )

    assert json.loads(answer.choices[0].message.content or "") == {"city": "Seoul", "sky": "clear"}
    body = double.requests_for(name)[-1].body
    if model == "openai":
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert body["generationConfig"]["responseMimeType"] == "application/json"


async def test_langchains_bind_tools_works_through_the_door(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    double.set("gpt-4o-mini", Behaviour(tool_calls=[("weather", SEOUL)]))

    @tool
    def weather(city: str) -> str:
        """Today's weather in a city."""
        return "sunny"

    llm = ChatOpenAI(base_url=BASE_URL, api_key="none", model="openai", http_async_client=shared_client, max_retries=0)
    message = await llm.bind_tools([weather]).ainvoke("What is the weather in Seoul?")

    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("weather", SEOUL)]
