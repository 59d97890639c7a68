"""The provider double's tool-call answers, read by the real SDK clients: what the double sends
must be what OpenAI and Gemini send, or tests of tool pass-through would prove nothing.

Service tier, not unit: the double is a real HTTP server (the session's, from tests/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from langchain_google_genai import ChatGoogleGenerativeAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from tests.helpers.provider_double import Behaviour, Fault, ProviderDouble, Served

OPENAI_KEY = "sk-test-0123456789abcdef"
GOOGLE_KEY = "AIza-test-0123456789"
GPT = "gpt-double-tools"
GEMINI = "gemini-3.5-flash"
ARGS = {"city": "Lisbon", "unit": "celsius", "days": 3}
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
}
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What's the weather in Lisbon?"}]


def get_weather(city: str, unit: str = "celsius", days: int = 1) -> str:
    """The forecast for a city.

    Args:
        city: The city.
        unit: celsius or fahrenheit.
        days: How many days ahead.
    """
    return "sunny"


@pytest.fixture
def calls_weather(double: ProviderDouble) -> ProviderDouble:
    for model in (GPT, GEMINI):
        double.set(model, Behaviour(tool_calls=[("get_weather", ARGS)]))
    return double


@pytest.fixture
def sdk(double: ProviderDouble) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{double.url}/v1", api_key=OPENAI_KEY, max_retries=0)
    yield client
    client.close()


def gemini(double: ProviderDouble, **options: Any) -> ChatGoogleGenerativeAI:
    # As wiring/models.py points Gemini at the double.
    return ChatGoogleGenerativeAI(
        model=GEMINI, google_api_key=GOOGLE_KEY, base_url=double.url, api_version="v1beta", max_retries=0, **options
    )


# -- OpenAI ------------------------------------------------------------------------------------
def test_openai_answers_with_the_tool_call(calls_weather: ProviderDouble, sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model=GPT, messages=QUESTION, tools=[WEATHER_TOOL])

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id == "call_1"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == ARGS
    assert completion.usage is not None and completion.usage.completion_tokens >= 1
    (served,) = calls_weather.requests_for(GPT)
    assert served.tools == ["get_weather"]
    assert served.body["tools"] == [WEATHER_TOOL]
    assert served.completed


@dataclass
class Streamed:
    """What a client puts together from a chat-completions stream's tool-call deltas."""

    ids: dict[int, str] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    pieces: dict[int, list[str]] = field(default_factory=dict)
    finishes: list[str | None] = field(default_factory=list)
    completion_tokens: int | None = None

    @classmethod
    def read(cls, stream: Iterable[ChatCompletionChunk]) -> Streamed:
        got = cls()
        for chunk in stream:
            if chunk.usage is not None:
                got.completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                got.finishes.append(choice.finish_reason)
                for delta in choice.delta.tool_calls or []:
                    if delta.id:
                        got.ids[delta.index] = delta.id
                    if delta.function and delta.function.name:
                        got.names[delta.index] = delta.function.name
                    if delta.function and delta.function.arguments:
                        got.pieces.setdefault(delta.index, []).append(delta.function.arguments)
        return got

    def arguments(self, index: int) -> Any:
        return json.loads("".join(self.pieces[index]))


def test_openai_streams_the_tool_call_in_pieces(calls_weather: ProviderDouble, sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=GPT, messages=QUESTION, tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True}
    )

    got = Streamed.read(stream)
    assert got.ids == {0: "call_1"} and got.names == {0: "get_weather"}
    assert len(got.pieces[0]) >= 2  # a client that keeps only one delta would lose the arguments
    assert got.arguments(0) == ARGS
    assert got.finishes[-1] == "tool_calls"
    assert got.completion_tokens is not None and got.completion_tokens >= 1
    assert calls_weather.requests_for(GPT)[0].completed


def test_openai_streams_each_of_several_calls_under_its_index(double: ProviderDouble, sdk: openai.OpenAI) -> None:
    double.set(GPT, Behaviour(tool_calls=[("get_weather", ARGS), ("get_weather", {"city": "Porto"})]))
    stream = sdk.chat.completions.create(model=GPT, messages=QUESTION, tools=[WEATHER_TOOL], stream=True)

    got = Streamed.read(stream)
    assert got.ids == {0: "call_1", 1: "call_2"}
    assert [got.arguments(0), got.arguments(1)] == [ARGS, {"city": "Porto"}]
    assert got.completion_tokens is None  # no usage chunk unless stream_options asks for one


def test_openai_cut_tool_stream_ends_without_finish_reason(double: ProviderDouble, sdk: openai.OpenAI) -> None:
    double.set(GPT, Behaviour(tool_calls=[("get_weather", ARGS)], cut_stream=True))
    stream = sdk.chat.completions.create(model=GPT, messages=QUESTION, tools=[WEATHER_TOOL], stream=True)

    finishes = Streamed.read(stream).finishes
    assert finishes and not any(finishes)
    assert not double.requests_for(GPT)[0].completed


def test_openai_without_declared_tools_answers_with_text(calls_weather: ProviderDouble, sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model=GPT, messages=QUESTION)

    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None and choice.message.content
    assert calls_weather.requests_for(GPT)[0].tools == []


# -- Gemini ------------------------------------------------------------------------------------
@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_gemini_answers_with_the_tool_call(calls_weather: ProviderDouble, streaming: bool) -> None:
    model = gemini(calls_weather, streaming=streaming).bind_tools([get_weather])

    message = model.invoke("What's the weather in Lisbon?")

    (call,) = message.tool_calls
    assert call["name"] == "get_weather" and call["args"] == ARGS
    (served,) = calls_weather.requests_for(GEMINI)
    assert served.stream is streaming and served.completed
    assert served.tools == ["get_weather"]


def test_gemini_without_declared_tools_answers_with_text(calls_weather: ProviderDouble) -> None:
    message = gemini(calls_weather).invoke("What's the weather in Lisbon?")

    assert message.tool_calls == [] and message.text
    assert calls_weather.requests_for(GEMINI)[0].tools == []


def test_gemini_reads_snake_case_declarations() -> None:
    """Served.tools reads the REST API's other spelling, which google-genai never sends."""
    body = {"tools": [{"function_declarations": [{"name": "a"}, {"name": "b"}]}, {"googleSearch": {}}]}

    assert Served("gemini", GEMINI, False, "", 200, body=body).tools == ["a", "b"]


def test_gemini_cut_tool_stream_ends_without_finish_reason(double: ProviderDouble) -> None:
    double.set(GEMINI, Behaviour(tool_calls=[("get_weather", ARGS)], cut_stream=True))
    model = gemini(double, streaming=True).bind_tools([get_weather])

    message = model.invoke("What's the weather in Lisbon?")

    assert "finish_reason" not in message.response_metadata  # what a guard's cut-stream check looks for
    assert not double.requests_for(GEMINI)[0].completed


def test_gemini_tool_stream_cut_before_anything_sends_nothing(double: ProviderDouble) -> None:
    double.set(GEMINI, Behaviour(tool_calls=[("get_weather", ARGS)], fault_for=lambda _: Fault(cut_after=0)))
    model = gemini(double, streaming=True).bind_tools([get_weather])

    with pytest.raises(ValueError, match="No generations"):
        model.invoke("What's the weather in Lisbon?")
    assert not double.requests_for(GEMINI)[0].completed
