"""OpenTelemetry traces and GenAI metrics, exported over real OTLP/HTTP to a receiver that decodes
the protobuf (``tests.helpers.otlp_receiver``), from the app in process with the provider double
behind the real SDKs. Switched on the way operators switch it on: the ``OTEL_*`` variables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from openai import AsyncOpenAI

from benchmarks.load import metric_sum
from tests.helpers.apps import TEST_OPENAI_KEY, AppFactory, calls_for, settings_for
from tests.helpers.otlp_receiver import OtlpReceiver, Span, running_otlp_receiver
from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.resilient import PRIMARY, SECOND, Made, resilient_apps

QUESTION = "What is a circuit breaker?"


@pytest.fixture(scope="module")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as receiver:
        yield receiver


@pytest.fixture
def otlp(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> OtlpReceiver:
    """The receiver, emptied, and tracing switched on for the apps this test builds."""
    otlp_receiver.reset()
    if not otlp_receiver.running:
        otlp_receiver.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tracing-test")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # a collector that is down fails an export in 1 s
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # the test flushes
    return otlp_receiver


async def _flush(app: FastAPI) -> None:
    telemetry = app.state.monitoring.telemetry
    await asyncio.to_thread(telemetry.tracer_provider.force_flush)


async def _trace(app: FastAPI, otlp: OtlpReceiver, response: httpx.Response, count: int) -> list[Span]:
    """The response's trace, once the receiver holds ``count`` of its spans."""
    trace_id = response.headers["x-trace-id"]
    await _flush(app)
    return otlp.wait_for(lambda spans: len([s for s in spans if s.trace_id == trace_id]) >= count, timeout_s=10)


def _of_trace(spans: list[Span], trace_id: str) -> list[Span]:
    return [s for s in spans if s.trace_id == trace_id]


def _one(spans: list[Span], predicate: Callable[[Span], bool]) -> Span:
    found = [s for s in spans if predicate(s)]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


@pytest.fixture
async def traced_app(otlp: OtlpReceiver, double: ProviderDouble, make_app: AppFactory) -> FastAPI:
    return make_app(settings_for(double))


@pytest.fixture
async def traced_client(traced_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=traced_app), base_url="http://server") as http:
        yield http


async def test_one_trace_per_request_with_the_server_ladder_and_call_spans_parented(
    traced_app: FastAPI, traced_client: httpx.AsyncClient, otlp: OtlpReceiver
) -> None:
    response = await traced_client.post(
        "/chat/invoke", json={"input": {"question": QUESTION}, "config": {"configurable": {"llm_temperature": 0.3}}}
    )

    assert response.status_code == 200
    trace_id = response.headers["x-trace-id"]
    spans = _of_trace(await _trace(traced_app, otlp, response, 3), trace_id)
    server = _one(spans, lambda s: s.kind == "SERVER")
    ladder = _one(spans, lambda s: s.name.startswith("ladder "))
    call = _one(spans, lambda s: s.kind == "CLIENT")
    assert server.name == "POST /chat/invoke" and server.parent_id is None
    assert ladder.parent_id == server.span_id
    assert call.parent_id == ladder.span_id
    assert call.name == "chat gpt-4o-mini"
    assert server.resource["service.name"] == "tracing-test"

    [record] = await calls_for(traced_app, response.headers["x-request-id"])
    assert (record["metadata"]["trace_id"], record["metadata"]["span_id"]) == (trace_id, call.span_id)
    attributes = call.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == record["model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.temperature"] == 0.3
    assert attributes["gen_ai.usage.input_tokens"] == record["input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] == record["output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert Decimal(str(attributes["llm_server.cost_usd"])) == Decimal(record["cost_usd"]) > 0
    assert attributes["llm_server.rung"] == 0
    assert attributes["llm_server.alternative"] == "openai"
    assert attributes["llm_server.request_id"] == response.headers["x-request-id"]
    assert attributes["llm_server.outcome"] == "ok"
    assert call.status_code != "ERROR"
    assert ladder.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert ladder.attributes["llm_server.served.model"] == "gpt-4o-mini"
    assert ladder.attributes["llm_server.routing.model"] == "openai"


async def test_a_fallback_shows_both_attempts_and_the_first_ones_cause(
    traced_app: FastAPI, traced_client: httpx.AsyncClient, otlp: OtlpReceiver, double: ProviderDouble
) -> None:
    double.set(PRIMARY, Behaviour(fail_status=503))

    response = await traced_client.post("/fallback/invoke", json={"input": {"question": QUESTION}})

    assert response.headers["x-served-by"] == SECOND
    spans = _of_trace(await _trace(traced_app, otlp, response, 4), response.headers["x-trace-id"])
    ladder = _one(spans, lambda s: s.name == "ladder fallback")
    calls = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_unix_nano)
    assert [c.attributes["gen_ai.request.model"] for c in calls] == [PRIMARY, SECOND]
    assert all(c.parent_id == ladder.span_id for c in calls)
    failed, answered = calls
    assert failed.attributes["error.type"] == "server_error"
    assert failed.status_code == "ERROR"
    assert answered.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert "error.type" not in answered.attributes
    assert [c.attributes["llm_server.rung"] for c in calls] == [0, 1]
    assert ladder.attributes["llm_server.served.rung"] == 1
    assert ladder.attributes["llm_server.attempts"] == 2
    records = await calls_for(traced_app, response.headers["x-request-id"])
    assert [r["metadata"]["span_id"] for r in records] == [c.span_id for c in calls]


async def test_every_rung_failed_ends_the_ladder_span_with_its_error(
    otlp: OtlpReceiver, double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, fallback_ladder=["openai", "gemini"]))  # no local floor
    double.set(PRIMARY, Behaviour(fail_status=503))
    double.set(SECOND, Behaviour(fail_status=500))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        response = await http.post("/fallback/invoke", json={"input": {"question": QUESTION}})

    assert response.status_code == 503
    spans = _of_trace(await _trace(app, otlp, response, 4), response.headers["x-trace-id"])
    ladder = _one(spans, lambda s: s.name == "ladder fallback")
    assert ladder.attributes["error.type"] == "all_models_failed"
    assert ladder.status_code == "ERROR"
    assert "llm_server.served.model" not in ladder.attributes
    server = _one(spans, lambda s: s.kind == "SERVER")
    assert server.attributes["http.status_code"] == 503  # the instrumentation's default conventions


@pytest.fixture
async def make_traced_resilient(
    otlp: OtlpReceiver, double: ProviderDouble, make_app: AppFactory
) -> AsyncIterator[Callable[..., Made]]:
    async with resilient_apps(double, make_app) as make:
        yield make


async def test_retries_and_breaker_skips_are_events_on_the_ladder_span(
    make_traced_resilient: Callable[..., Made], double: ProviderDouble, otlp: OtlpReceiver
) -> None:
    app, client, fake = make_traced_resilient(
        retry_attempts=2, breaker_consecutive_failures=2, breaker_open_s=30, primary_timeout_s=10
    )
    double.set(PRIMARY, Behaviour(fail_status=503))

    retried = await client.post("/fallback/invoke", json={"input": {"question": QUESTION}})
    skipped = await client.post("/fallback/invoke", json={"input": {"question": QUESTION}})

    assert fake.slept, "the primary was retried after a wait"
    spans = await _trace(app, otlp, skipped, 3)
    first = _one(_of_trace(spans, retried.headers["x-trace-id"]), lambda s: s.name == "ladder fallback")
    [retry] = [e for e in first.events if e.name == "llm_server.retry"]
    assert retry.attributes["llm_server.cause"] == "server_error"
    assert retry.attributes["llm_server.wait_s"] == fake.slept[0]
    assert retry.attributes["llm_server.try"] == 2
    second = _of_trace(spans, skipped.headers["x-trace-id"])
    ladder = _one(second, lambda s: s.name == "ladder fallback")
    [skip] = [e for e in ladder.events if e.name == "llm_server.skip"]
    assert skip.attributes["llm_server.cause"] == "breaker_open"
    assert skip.attributes["gen_ai.request.model"] == PRIMARY
    assert [s.attributes["gen_ai.request.model"] for s in second if s.kind == "CLIENT"] == [SECOND]


async def test_a_broken_stream_continued_by_the_next_rung_is_an_event_and_a_linked_call(
    make_traced_resilient: Callable[..., Made], double: ProviderDouble, otlp: OtlpReceiver
) -> None:
    app, client, _ = make_traced_resilient()
    answer = "Paris is the capital of France and it lies on the river Seine in the north of the country."
    double.set(PRIMARY, Behaviour(text=answer, cut_stream=True))
    double.set(SECOND, Behaviour(text="river Seine in the north of the country."))

    response = await client.post("/fallback/stream", json={"input": {"question": "Where is Paris?"}})

    assert response.status_code == 200
    spans = _of_trace(await _trace(app, otlp, response, 4), response.headers["x-trace-id"])
    ladder = _one(spans, lambda s: s.name == "ladder fallback")
    [continuation] = [e for e in ladder.events if e.name == "llm_server.continuation"]
    assert continuation.attributes["gen_ai.request.model"] == SECOND
    assert continuation.attributes["llm_server.continues"] == PRIMARY
    assert continuation.attributes["llm_server.form"] == "user_turn"
    assert int(continuation.attributes["llm_server.at_char"]) > 0
    broken, continuing = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_unix_nano)
    assert broken.attributes["error.type"] == "truncated_stream"
    assert continuing.attributes["llm_server.continues"] == PRIMARY


async def test_an_answer_from_the_response_cache_is_a_ladder_span_without_a_model_call(
    otlp: OtlpReceiver, double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(settings_for(double, cache_tiers=["enterprise"], cache_db_path=tmp_path / "cache.sqlite3",
                                policy_prompt_styles="00-24=default"))  # fmt: skip
    body = {"input": {"question": QUESTION}, "config": {"configurable": {"llm_model": "openai"}}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        first = await http.post("/chat/invoke", json=body)
        await app.state.caching.answers.drain()  # the fresh answer is written before it is asked again
        second = await http.post("/chat/invoke", json=body)

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    spans = _of_trace(await _trace(app, otlp, second, 2), second.headers["x-trace-id"])
    ladder = _one(spans, lambda s: s.name.startswith("ladder "))
    assert ladder.attributes["llm_server.cache"] == "hit"
    assert ladder.attributes["llm_server.served.model"] == PRIMARY
    assert not [s for s in spans if s.kind == "CLIENT"]
    [record] = await calls_for(app, second.headers["x-request-id"])
    assert record["outcome"] == "cached"
    assert (record["metadata"]["trace_id"], record["metadata"]["span_id"]) == (ladder.trace_id, ladder.span_id)


async def test_an_incoming_traceparent_is_continued(
    traced_app: FastAPI, traced_client: httpx.AsyncClient, otlp: OtlpReceiver
) -> None:
    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    response = await traced_client.post(
        "/chat/invoke",
        json={"input": {"question": QUESTION}},
        headers={"traceparent": f"00-{parent_trace}-{parent_span}-01"},
    )

    assert response.headers["x-trace-id"] == parent_trace
    spans = _of_trace(await _trace(traced_app, otlp, response, 3), parent_trace)
    server = _one(spans, lambda s: s.kind == "SERVER")
    assert server.parent_id == parent_span


async def test_prompt_and_answer_are_left_out_unless_the_operator_opts_in(
    otlp: OtlpReceiver, double: ProviderDouble, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = f"{QUESTION} My key is {TEST_OPENAI_KEY}"
    plain = make_app(settings_for(double))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    capturing = make_app(settings_for(double))
    body = {"input": {"question": question}}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://server") as http:
        left_out = await http.post("/chat/invoke", json=body)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=capturing), base_url="http://server") as http:
        captured = await http.post("/chat/invoke", json=body)

    plain_spans = _of_trace(await _trace(plain, otlp, left_out, 3), left_out.headers["x-trace-id"])
    every_value = " ".join(str(v) for s in plain_spans for v in s.attributes.values())
    assert QUESTION not in every_value and left_out.json()["output"] not in every_value
    assert not any("gen_ai.input.messages" in s.attributes for s in plain_spans)
    spans = _of_trace(await _trace(capturing, otlp, captured, 3), captured.headers["x-trace-id"])
    call = _one(spans, lambda s: s.kind == "CLIENT")
    assert QUESTION in str(call.attributes["gen_ai.input.messages"])
    assert '"role": "user"' in str(call.attributes["gen_ai.input.messages"])
    answer = captured.json()["output"].replace(TEST_OPENAI_KEY, "[redacted]")  # the double echoes the question
    assert answer in str(call.attributes["gen_ai.output.messages"])
    every_value = " ".join(str(v) for s in spans for v in s.attributes.values())
    assert TEST_OPENAI_KEY not in every_value, "a secret in the prompt never reaches the collector"


async def test_a_stream_records_its_first_token(
    traced_app: FastAPI, traced_client: httpx.AsyncClient, otlp: OtlpReceiver
) -> None:
    response = await traced_client.post("/chat/stream", json={"input": {"question": QUESTION}})

    assert response.status_code == 200
    spans = _of_trace(await _trace(traced_app, otlp, response, 3), response.headers["x-trace-id"])
    call = _one(spans, lambda s: s.kind == "CLIENT")
    ladder = _one(spans, lambda s: s.name.startswith("ladder "))
    assert call.parent_id == ladder.span_id
    assert [e.name for e in call.events] == ["llm_server.first_token"]
    assert 0 < float(call.attributes["gen_ai.response.time_to_first_chunk"]) < 10
    [record] = await calls_for(traced_app, response.headers["x-request-id"])
    assert call.attributes["gen_ai.usage.output_tokens"] == record["output_tokens"]


async def test_a_collector_that_hangs_costs_no_request_and_the_spans_it_cannot_take_are_counted(
    otlp: OtlpReceiver, double: ProviderDouble, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    app = make_app(settings_for(double))
    otlp.hang()  # the export thread is held in its first export; the queue of 4 fills up
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
            answers = [
                await http.post("/chat/invoke", json={"input": {"question": f"{QUESTION} {n}"}}) for n in range(4)
            ]
            dropped = metric_sum(
                (await http.get("/metrics")).text, "llm_trace_spans_dropped_total", reason="queue_full"
            )
    finally:
        otlp.release()

    assert [a.status_code for a in answers] == [200] * 4
    # 12 spans: at most 2 in the held export and 4 queued; the rest were dropped, and counted.
    assert dropped >= 6
    assert app.state.monitoring.telemetry.export.dropped >= dropped


async def test_a_collector_that_is_down_costs_no_request_and_its_lost_spans_are_counted(
    otlp: OtlpReceiver, double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double))
    otlp.stop()  # killed: connections are refused

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        answer = await http.post("/chat/invoke", json={"input": {"question": QUESTION}})
        await _flush(app)  # the export fails once the exporter's 1 s timeout is spent
        failed = metric_sum((await http.get("/metrics")).text, "llm_trace_spans_dropped_total", reason="export_failed")

    assert answer.status_code == 200
    assert failed == 3, "the server, ladder and call spans"
    assert app.state.monitoring.telemetry.export.dropped == 3


async def test_the_openai_door_is_traced_the_same_way_through_the_official_sdk(
    traced_app: FastAPI, traced_client: httpx.AsyncClient, otlp: OtlpReceiver, double: ProviderDouble
) -> None:
    double.set(PRIMARY, Behaviour(fail_status=503))
    sdk = AsyncOpenAI(base_url="http://server/v1", api_key="none", http_client=traced_client, max_retries=0)

    raw = await sdk.chat.completions.with_raw_response.create(
        model="fallback", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    async for _ in raw.parse():
        pass

    spans = _of_trace(await _trace(traced_app, otlp, raw.http_response, 4), raw.headers["x-trace-id"])
    server = _one(spans, lambda s: s.kind == "SERVER")
    ladder = _one(spans, lambda s: s.name == "ladder fallback")
    assert server.name == "POST /v1/chat/completions"
    assert ladder.parent_id == server.span_id
    calls = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_unix_nano)
    assert [(c.attributes["gen_ai.request.model"], c.attributes.get("error.type")) for c in calls] == [
        (PRIMARY, "server_error"),
        (SECOND, None),
    ]
    assert all(c.parent_id == ladder.span_id for c in calls)


async def test_genai_client_metrics_match_the_call_records(
    traced_app: FastAPI, traced_client: httpx.AsyncClient, otlp: OtlpReceiver
) -> None:
    response = await traced_client.post("/chat/stream", json={"input": {"question": QUESTION}})
    [record] = await calls_for(traced_app, response.headers["x-request-id"])

    await asyncio.to_thread(traced_app.state.monitoring.telemetry.meter_provider.force_flush)
    points = otlp.wait_for_metrics(lambda points: any(p.name == "gen_ai.client.token.usage" for p in points))

    tokens = {p.attributes["gen_ai.token.type"]: p for p in points if p.name == "gen_ai.client.token.usage"}
    assert tokens["input"].value == record["input_tokens"] and tokens["input"].count == 1
    assert tokens["output"].value == record["output_tokens"]
    assert tokens["input"].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert tokens["input"].unit == "{token}"
    [duration] = [p for p in points if p.name == "gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.unit == "s"
    assert duration.value == pytest.approx(record["duration_s"])
    [first] = [p for p in points if p.name == "gen_ai.client.operation.time_to_first_chunk"]
    assert first.value == pytest.approx(record["first_token_s"])


async def test_with_tracing_off_nothing_is_built_and_nothing_is_stamped(
    client: httpx.AsyncClient, remote_app: FastAPI
) -> None:
    response = await client.post("/chat/invoke", json={"input": {"question": QUESTION}})

    assert remote_app.state.monitoring.telemetry is None
    assert remote_app.state.monitoring.performance.spans is None
    assert remote_app.state.resilience.traces is None
    assert "x-trace-id" not in response.headers
    [record] = await calls_for(remote_app, response.headers["x-request-id"])
    assert "trace_id" not in record["metadata"]
