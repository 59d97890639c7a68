"""The response cache's key: every part of a request that shapes its answer changes the key, and
nothing else does (the same request twice, or a temperature written as 1 or 1.0, is one key)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from caching.cache_key import KeyParts, cache_key
from chains.prompts import bilingual_prompt
from vocabulary import DEFAULT_STYLE, DETAILED_STYLE, MODEL_ID, STYLE_ID, TEMPERATURE_ID


def prompt(question: str, *, style: str = DEFAULT_STYLE, language: str = "auto") -> list[BaseMessage]:
    """The messages a LangServe route's ladder receives: the question in its prompt template."""
    return bilingual_prompt(style).invoke({"question": question, "language": language}).to_messages()


BASE = KeyParts(
    door="langserve",
    route="chat",
    ladder="chat:openai",
    scope="a1b2c3d4e5f6",
    tier="pro",
    messages=prompt("What is DNS?"),
    configurable={MODEL_ID: "openai", STYLE_ID: DEFAULT_STYLE, TEMPERATURE_ID: 0.7},
    options={},
)


def changed(**parts: Any) -> KeyParts:
    return dataclasses.replace(BASE, **parts)


def test_the_same_request_has_the_same_key() -> None:
    again = changed(messages=prompt("What is DNS?"), configurable=dict(BASE.configurable))

    assert cache_key(again) == cache_key(BASE)
    assert len(cache_key(BASE)) == 64  # a SHA-256, in hex


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(changed(door="openai"), id="door"),
        pytest.param(changed(route="adaptive"), id="route"),
        pytest.param(changed(ladder="chat:gemini"), id="ladder-alternative"),
        pytest.param(changed(ladder="fallback", route="fallback"), id="ladder"),
        pytest.param(changed(scope="f6e5d4c3b2a1"), id="scope-key"),
        pytest.param(changed(scope="shared"), id="scope-shared"),
        pytest.param(changed(tier="enterprise"), id="tier"),
        pytest.param(changed(messages=prompt("What is TCP?")), id="question"),
        pytest.param(changed(messages=prompt("What is DNS?", style=DETAILED_STYLE)), id="prompt-template"),
        pytest.param(changed(messages=prompt("What is DNS?", language="ko")), id="language"),
        pytest.param(changed(messages=[SystemMessage("Be brief."), *prompt("What is DNS?")]), id="system-message"),
        pytest.param(changed(configurable={**BASE.configurable, MODEL_ID: "gemini"}), id="alternative"),
        pytest.param(changed(configurable={**BASE.configurable, STYLE_ID: DETAILED_STYLE}), id="prompt-style"),
        pytest.param(changed(configurable={**BASE.configurable, TEMPERATURE_ID: 0.2}), id="temperature"),
        pytest.param(changed(options={"max_tokens": 64}), id="max_tokens"),
        pytest.param(changed(options={"top_p": 0.5}), id="top_p"),
        pytest.param(changed(options={"seed": 7}), id="seed"),
        pytest.param(changed(options={"stop": ["\n"]}), id="stop"),
        pytest.param(changed(options={"tools": [{"type": "function", "function": {"name": "f"}}]}), id="tools"),
        pytest.param(changed(options={"response_format": {"type": "json_object"}}), id="response_format"),
    ],
)
def test_each_part_that_shapes_the_answer_changes_the_key(variant: KeyParts) -> None:
    assert cache_key(variant) != cache_key(BASE)


def test_each_generation_option_value_has_its_own_key() -> None:
    keys = {cache_key(changed(options={"max_tokens": n})) for n in (16, 32, 64)}
    keys |= {cache_key(changed(options={"seed": n})) for n in (1, 2)}

    assert len(keys) == 5


def test_a_temperature_written_as_an_int_or_a_float_is_one_key() -> None:
    as_int = changed(configurable={**BASE.configurable, TEMPERATURE_ID: 1})
    as_float = changed(configurable={**BASE.configurable, TEMPERATURE_ID: 1.0})

    assert cache_key(as_int) == cache_key(as_float)
    assert cache_key(as_int) != cache_key(changed(configurable={**BASE.configurable, TEMPERATURE_ID: 1.5}))


def test_the_order_of_ids_and_options_does_not_matter_but_the_order_of_messages_does() -> None:
    reordered = changed(
        configurable=dict(reversed(list(BASE.configurable.items()))),
        options={"top_p": 0.5, "max_tokens": 64},
    )
    swapped = changed(messages=[HumanMessage("b"), HumanMessage("a")])

    assert cache_key(reordered) == cache_key(changed(options={"max_tokens": 64, "top_p": 0.5}))
    assert cache_key(swapped) != cache_key(changed(messages=[HumanMessage("a"), HumanMessage("b")]))


def test_the_whole_conversation_is_in_the_key_tool_calls_and_names_included() -> None:
    asked = [HumanMessage("Weather in Seoul?")]
    called = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Seoul"}, "id": "call_1"}])
    other_call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Busan"}, "id": "call_1"}])
    result = ToolMessage("12 C", tool_call_id="call_1")

    first = cache_key(changed(messages=[*asked, called, result]))

    assert first != cache_key(changed(messages=[*asked, other_call, result]))
    assert first != cache_key(changed(messages=[*asked, called, ToolMessage("12 C", tool_call_id="call_2")]))
    assert cache_key(changed(messages=[HumanMessage("Hi", name="ann")])) != cache_key(
        changed(messages=[HumanMessage("Hi", name="bob")])
    )


def test_bookkeeping_ids_do_not_change_the_key() -> None:
    noted = changed(configurable={**BASE.configurable, "__pregel_task_id": "x"})

    assert cache_key(noted) == cache_key(BASE)
