"""Streams that break after text reached the client are continued by the next rung (issue 17):
through the real OpenAI and Gemini SDKs against the provider double, on LangServe's /stream and
on the OpenAI-compatible door. The client gets one answer, the first model's text followed by the
next one's continuation without what it repeated, and a last event saying who wrote what."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from tests.helpers.apps import AppFactory, calls_for, settings_for, sse_events
from tests.helpers.provider_double import Behaviour, Fault, ProviderDouble
from tests.helpers.resilient import PRIMARY, SECOND, Made

THIRD = "gpt-4o"
QUESTION = {"input": {"question": "Where is Paris?"}}
ANSWER = "Paris is the capital of France and it lies on the river Seine in the north of the country."
WORDS = ANSWER.split(" ")
CUT_AT = len(WORDS) // 2 + 1  # where the double's default cut stops: after these words
SENT = " ".join(WORDS[:CUT_AT])  # what reached the client before the break
# The next model repeats the last three words it was shown before going on, as models do.
CONTINUATION = " ".join(WORDS[CUT_AT - 3 :])


def streamed_text(events: list[tuple[str, str]]) -> str:
    return "".join(json.loads(data) for event, data in events if event == "data")


def last_metadata(events: list[tuple[str, str]]) -> dict[str, Any]:
    told = [json.loads(data) for event, data in events if event == "metadata"]
    return dict(told[-1])


def breaks(fault: Fault) -> Callable[[str], Fault | None]:
    """``fault`` on the first request only (a rung is never asked twice here, but be explicit)."""
    asked: list[str] = []

    def fault_for(question: str) -> Fault | None:
        asked.append(question)
        return fault if len(asked) == 1 else None

    return fault_for


async def stream(client: httpx.AsyncClient, path: str = "/fallback/stream") -> tuple[httpx.Response, list]:
    response = await client.post(path, json=QUESTION)
    return response, sse_events(response.text)


async def test_a_cut_stream_is_continued_by_the_next_model_without_the_words_it_repeats(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    app, client, _ = make_resilient()
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))
    double.set(SECOND, Behaviour(text=CONTINUATION))

    response, events = await stream(client)

    assert response.status_code == 200
    assert streamed_text(events) == ANSWER
    assert [event for event, _ in events if event in ("error", "end")] == ["end"]
    assert events[-2][0] == "metadata", "the last event before end says how the answer came to be"
    told = last_metadata(events)["provenance"]
    assert told["outcome"] == "continued"
    assert told["continued"] == [{"from": PRIMARY, "to": SECOND, "at": len(SENT), "cause": "truncated_stream"}]
    first, second = told["contributors"]
    assert (first["model"], first["chars"], first["ended"], first["form"]) == (
        PRIMARY,
        [0, len(SENT)],
        "truncated_stream",
        None,
    )
    assert (second["model"], second["chars"], second["ended"], second["form"]) == (
        SECOND,
        [len(SENT), len(ANSWER)],
        "finished",
        "user_turn",
    )
    assert second["repeat_dropped_chars"] == len(" ".join(WORDS[CUT_AT - 3 : CUT_AT]))
    # Each contributing call has its own priced record, linked by the request.
    calls = await calls_for(app, response.headers["x-request-id"])
    assert [(c["model"], c["outcome"], c["cause"]) for c in calls] == [
        (PRIMARY, "error", "truncated_stream"),
        (SECOND, "ok", None),
    ]
    assert calls[1]["metadata"]["continues"] == {"model": PRIMARY, "at": len(SENT), "form": "user_turn"}
    assert first["usage"]["output_tokens"] == calls[0]["output_tokens"] > 0
    assert second["usage"]["output_tokens"] == calls[1]["output_tokens"] > 0
    # Gemini was shown the answer so far as its own turn, then asked to go on.
    (asked,) = double.requests_for(SECOND)
    *_, so_far, go_on = asked.body["contents"]
    assert (so_far["role"], so_far["parts"][0]["text"]) == ("model", SENT)
    assert go_on["role"] == "user" and "Continue it from exactly where it stops" in go_on["parts"][0]["text"]


BREAKS = {
    "cut": (Fault(cut_after=CUT_AT), {}, "truncated_stream"),
    "stall": (Fault(stall_after=CUT_AT), {"stream_stall_timeout_s": 0.3}, "stalled_stream"),
    "mid-stream 5xx": (Fault(error_after=CUT_AT), {}, "server_error"),
    "malformed chunks": (Fault(bad_after=CUT_AT, bad_chunks=2), {"max_bad_chunks": 1}, "malformed_stream"),
}


@pytest.mark.parametrize("kind", BREAKS)
async def test_each_kind_of_break_is_continued_on_a_langserve_stream(
    make_resilient: Callable[..., Made], double: ProviderDouble, kind: str
) -> None:
    fault, settings, cause = BREAKS[kind]
    _, client, _ = make_resilient(**settings)
    double.set(PRIMARY, Behaviour(text=ANSWER, fault_for=breaks(fault)))
    double.set(SECOND, Behaviour(text=CONTINUATION))

    _, events = await stream(client)

    assert streamed_text(events) == ANSWER
    told = last_metadata(events)["provenance"]
    assert told["continued"] == [{"from": PRIMARY, "to": SECOND, "at": len(SENT), "cause": cause}]


@pytest.mark.parametrize("kind", BREAKS)
async def test_each_kind_of_break_is_continued_on_the_openai_door_through_the_openai_sdk(
    double: ProviderDouble, make_app: AppFactory, kind: str
) -> None:
    fault, settings, cause = BREAKS[kind]
    app = make_app(settings_for(double, **settings))
    double.set(PRIMARY, Behaviour(text=ANSWER, fault_for=breaks(fault)))
    double.set(SECOND, Behaviour(text=CONTINUATION))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        client = AsyncOpenAI(base_url="http://server/v1", api_key="none", http_client=http, max_retries=0)
        chunks = [
            chunk
            async for chunk in await client.chat.completions.create(
                model="fallback", messages=[{"role": "user", "content": "Where is Paris?"}], stream=True
            )
        ]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    provenance = (chunks[-1].model_extra or {})["provenance"]
    assert provenance["continued"] == [{"from": PRIMARY, "to": SECOND, "at": len(SENT), "cause": cause}]


async def test_a_model_that_rejects_a_prefill_is_asked_again_with_a_user_turn(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    app, client, _ = make_resilient(prefill_models=["gemini", "local"])
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))
    double.set(SECOND, Behaviour(text=CONTINUATION, reject_prefill=True))

    response, events = await stream(client)

    assert streamed_text(events) == ANSWER
    prefilled, turned = double.requests_for(SECOND)
    assert prefilled.status == 400 and prefilled.body["contents"][-1]["role"] == "model"
    assert turned.status == 200 and turned.body["contents"][-1]["role"] == "user"
    second = last_metadata(events)["provenance"]["contributors"][1]
    assert (second["model"], second["form"]) == (SECOND, "user_turn")
    calls = await calls_for(app, response.headers["x-request-id"])
    assert [(c["model"], c["cause"]) for c in calls] == [
        (PRIMARY, "truncated_stream"),
        (SECOND, "bad_request"),
        (SECOND, None),
    ]


async def test_a_model_that_takes_a_prefill_is_asked_with_one(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    _, client, _ = make_resilient(prefill_models=["gemini", "local"])
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))
    rest = " " + " ".join(WORDS[CUT_AT:])
    double.set(SECOND, Behaviour(text=rest))

    _, events = await stream(client)

    assert streamed_text(events) == ANSWER
    (asked,) = double.requests_for(SECOND)
    assert (asked.body["contents"][-1]["role"], asked.body["contents"][-1]["parts"][0]["text"]) == ("model", SENT)
    assert last_metadata(events)["provenance"]["contributors"][1]["form"] == "prefill"


async def test_a_stream_no_rung_can_continue_ends_interrupted_naming_every_try(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    _, client, _ = make_resilient(faults={"local": {"kind": "status", "status": 503}})
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))
    double.set(SECOND, Behaviour(fail_status=503))
    double.set(THIRD, Behaviour(fail_status=500))

    _, events = await stream(client)

    assert streamed_text(events) == SENT
    kinds = [event for event, _ in events]
    assert "end" not in kinds and kinds[-1] == "error"
    assert kinds[-2] == "metadata", "the last event before the error says the answer was interrupted"
    told = last_metadata(events)["provenance"]
    assert told["outcome"] == "interrupted"
    assert [c["model"] for c in told["contributors"]] == [PRIMARY]
    error = json.loads(events[-1][1])
    assert (error["status_code"], error["error"], error["model"], error["cause"]) == (
        502,
        "stream_interrupted",
        PRIMARY,
        "truncated_stream",
    )
    assert [(a["model"], a["cause"]) for a in error["continuations"]] == [
        (SECOND, "server_error"),
        (THIRD, "server_error"),
        ("SmolLM2-135M-Instruct", "server_error"),
    ]


async def test_with_continuation_switched_off_a_cut_stream_ends_with_an_explicit_error_event(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    _, client, _ = make_resilient(continue_streams=False)
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))

    _, events = await stream(client)

    assert streamed_text(events) == SENT
    errors = [json.loads(data) for event, data in events if event == "error"]
    assert [(e["status_code"], e["model"], e["cause"]) for e in errors] == [(502, PRIMARY, "truncated_stream")]
    assert double.requests_for(SECOND) == [], "nobody may take over a half-sent answer"


async def test_the_quality_gate_judges_the_whole_continued_answer(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    # The gate holds an answer back until it is long enough, so the cut comes after that; the
    # continuation is far too short on its own: judged alone, it would be rejected and the third
    # model asked.
    long_answer = f"{ANSWER} {ANSWER}"
    _, client, _ = make_resilient(quality_min_chars=80)
    double.set(PRIMARY, Behaviour(text=long_answer, cut_stream=True))
    double.set(SECOND, Behaviour(text=" and so on."))

    _, events = await stream(client, "/quality/stream")

    told = last_metadata(events)["provenance"]
    assert [c["model"] for c in told["contributors"]] == [PRIMARY, SECOND]
    assert told["outcome"] == "continued"
    assert streamed_text(events).endswith(" and so on.")
    assert double.requests_for(THIRD) == []


async def test_a_filtered_word_in_the_part_already_sent_stops_the_continued_answer(
    make_resilient: Callable[..., Made], double: ProviderDouble
) -> None:
    # The first model's call never ended, so only the continuation's end can judge its words.
    _, client, _ = make_resilient(keyword_filter_words=["capital"], keyword_filter_mode="block")
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))
    double.set(SECOND, Behaviour(text=CONTINUATION))

    _, events = await stream(client)

    error = json.loads(events[-1][1])
    assert (events[-1][0], error["error"], error["cause"]) == ("error", "stream_interrupted", "content_filter")
    assert last_metadata(events)["provenance"]["outcome"] == "interrupted"


async def test_the_openai_door_continues_a_cut_stream_and_says_so_in_its_last_chunk(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double))
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))
    double.set(SECOND, Behaviour(text=CONTINUATION))
    body = {"model": "fallback", "messages": [{"role": "user", "content": "Where is Paris?"}], "stream": True}
    body["stream_options"] = {"include_usage": True}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as client:
        response = await client.post("/v1/chat/completions", json=body)

    *chunks, last, done = [data for _, data in sse_events(response.text)]
    assert done == "[DONE]"
    parsed = [json.loads(chunk) for chunk in chunks]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c["choices"])
    assert text == ANSWER
    final = json.loads(last)
    assert final["choices"] == []
    assert final["provenance"]["outcome"] == "continued"
    assert [c["model"] for c in final["provenance"]["contributors"]] == [PRIMARY, SECOND]
    # The usage is every contributing call's, the broken one's included.
    tokens = [c["usage"]["output_tokens"] for c in final["provenance"]["contributors"]]
    assert final["usage"]["completion_tokens"] == sum(tokens)


async def test_a_tool_call_stream_is_never_continued(double: ProviderDouble, make_app: AppFactory) -> None:
    app = make_app(settings_for(double))
    double.set(PRIMARY, Behaviour(tool_calls=[("get_weather", {"city": "Paris"})], cut_stream=True))
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    body = {"model": "fallback", "messages": [{"role": "user", "content": "Weather in Paris?"}], "stream": True}
    body["tools"] = [tool]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as client:
        response = await client.post("/v1/chat/completions", json=body)

    events = [data for _, data in sse_events(response.text)]
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert (error["code"], error["cause"]) == ("stream_interrupted", "truncated_stream")
    assert double.requests_for(SECOND) == []


async def test_the_local_model_continues_a_remote_answer_from_a_prefill(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double))
    double.set(PRIMARY, Behaviour(text=ANSWER, cut_stream=True))
    body = {"input": {"question": "Where is Paris?"}, "config": {"configurable": {"llm_model": "openai"}}}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as client:
        response = await client.post("/chat/stream", json=body)

    events = sse_events(response.text)
    text = streamed_text(events)
    assert text.startswith(SENT) and len(text) > len(SENT), text
    told = last_metadata(events)["provenance"]
    local = told["contributors"][1]
    assert (told["outcome"], local["model"], local["form"], local["chars"]) == (
        "continued",
        "SmolLM2-135M-Instruct",
        "prefill",
        [len(SENT), len(text)],
    )
    calls = await calls_for(app, response.headers["x-request-id"])
    assert calls[1]["metadata"]["continues"] == {"model": PRIMARY, "at": len(SENT), "form": "prefill"}
    assert calls[1]["output_tokens"] == local["usage"]["output_tokens"] > 0
