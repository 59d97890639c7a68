"""Server-side monitoring: one correct record per LLM attempt, even under concurrency."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import httpx
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

from callbacks.performance import PerformanceMonitor
from callbacks.pricing import Price, PriceTable, Usage
from callbacks.records import CallRecord, summarize
from tests.conftest import AppFactory, settings_for
from tests.provider_double import Behaviour, ProviderDouble

PRICES = PriceTable({"m": Price(Decimal("1"), Decimal("0.5"), Decimal("2"))})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def usage_of(input_tokens: int, output_tokens: int) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
    )


def result(text: str, input_tokens: int, output_tokens: int) -> LLMResult:
    message = AIMessage(content=text, usage_metadata=usage_of(input_tokens, output_tokens))
    return LLMResult(generations=[[ChatGeneration(message=message)]], llm_output=None)


META = {"ls_provider": "p", "ls_model_name": "m"}
WALL = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731


async def test_interleaved_calls_each_keep_their_own_start_time() -> None:
    clock, records = FakeClock(), []
    monitor = PerformanceMonitor([records.append], PRICES, clock=clock, wall_clock=WALL)
    a, b = uuid4(), uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("a")]], run_id=a, metadata=META)
    clock.now = 1.0
    await monitor.on_chat_model_start({}, [[HumanMessage("bb")]], run_id=b, metadata=META)
    assert monitor.in_flight("m") == 2
    clock.now = 1.5
    await monitor.on_llm_new_token("x", run_id=b)
    clock.now = 5.0
    await monitor.on_llm_end(result("answer a", 10, 20), run_id=a)
    assert monitor.in_flight("m") == 1
    clock.now = 7.0
    await monitor.on_llm_error(RuntimeError("boom"), run_id=b)
    assert monitor.in_flight("m") == 0

    by_run = {r.run_id: r for r in records}
    assert by_run[str(a)].duration_s == 5.0
    assert by_run[str(b)].duration_s == 6.0
    assert by_run[str(b)].first_token_s == 0.5
    assert by_run[str(a)].first_token_s is None
    assert (by_run[str(a)].input_tokens, by_run[str(a)].output_tokens) == (10, 20)
    assert by_run[str(a)].cost_usd == Decimal("0.00005")  # (10 * 1 + 20 * 2) / 1M
    assert by_run[str(b)].prompt_chars == 2


async def test_a_result_without_llm_output_is_recorded_from_usage_metadata() -> None:
    records: list[CallRecord] = []
    monitor = PerformanceMonitor([records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata=META)
    await monitor.on_llm_end(result("ok", 7, 9), run_id=run)

    (record,) = records
    assert (record.input_tokens, record.output_tokens, record.outcome) == (7, 9, "ok")


async def test_an_unpriced_model_is_recorded_with_no_cost_not_zero() -> None:
    records: list[CallRecord] = []
    monitor = PerformanceMonitor([records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata={"ls_model_name": "mystery"})
    await monitor.on_llm_end(result("ok", 7, 9), run_id=run)

    assert records[0].cost_usd is None
    assert summarize(records)["totals"]["unpriced_calls"] == 1


async def test_32_concurrent_requests_give_32_separate_correct_records(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    # The primary's timeout is not what this test is about: under a loaded CI machine 32 requests
    # at once can take longer than the 1 s the other tests use, and a fallback adds a record.
    remote_app = make_app(settings_for(double, primary_timeout_s=30))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=remote_app), base_url="http://server")

    def delay(question: str) -> float:
        match = re.search(r"wait (\d+)ms", question)
        return int(match[1]) / 1000 if match else 0.0

    double.set("gpt-4o-mini", Behaviour(delay_for=delay))

    async def ask(i: int) -> httpx.Response:
        payload = {
            "input": {"question": f"question {i} wait {20 * (i % 8)}ms " + "word " * i},
            "config": {"metadata": {"user_id": f"user-{i}"}},
        }
        return await client.post("/fallback/invoke", json=payload)

    responses = await asyncio.gather(*(ask(i) for i in range(32)))

    assert all(r.status_code == 200 for r in responses)
    served = {s.question: s for s in double.requests_for("gpt-4o-mini")}
    run_ids = set()
    for i, response in enumerate(responses):
        (record,) = await remote_app.state.monitoring.store.find(request_id=response.headers["x-request-id"])
        (sent,) = [s for q, s in served.items() if f"question {i} wait" in q]
        assert record.metadata["user_id"] == f"user-{i}"
        assert (record.input_tokens, record.output_tokens) == (sent.input_tokens, sent.output_tokens)
        assert record.answer_chars == len(response.json()["output"])
        assert record.duration_s >= delay(sent.question)
        run_ids.add(record.run_id)
    assert len(run_ids) == 32
    await client.aclose()


async def test_a_client_leaving_mid_stream_is_recorded_as_cancelled() -> None:
    records: list[CallRecord] = []
    monitor = PerformanceMonitor([records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata=META)
    await monitor.on_llm_error(GeneratorExit(), run_id=run)

    assert (records[0].outcome, records[0].cause) == ("cancelled", "cancelled")
    assert (records[0].output_tokens, records[0].cost_usd) == (0, None)
    assert summarize(records)["totals"]["errors"] == 0


async def test_a_call_cut_short_is_charged_for_the_tokens_streamed_until_then() -> None:
    records: list[CallRecord] = []
    monitor = PerformanceMonitor([records.append], PRICES)
    run = uuid4()
    # One provider reports the prompt's usage with its first chunk (as the local model does);
    # the rest stream text only, about a token a chunk.
    first = ChatGenerationChunk(message=AIMessageChunk(content="a", usage_metadata=usage_of(40, 0)))

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata=META)
    await monitor.on_llm_new_token("a", chunk=first, run_id=run)
    for token in ("b", "", "c"):
        await monitor.on_llm_new_token(
            token, chunk=ChatGenerationChunk(message=AIMessageChunk(content=token)), run_id=run
        )
    await monitor.on_llm_error(asyncio.CancelledError(), run_id=run)

    (record,) = records
    assert (record.outcome, record.input_tokens, record.output_tokens) == ("cancelled", 40, 3)
    assert record.cost_usd == PRICES.cost("m", Usage(input_tokens=40, output_tokens=3))


async def test_a_failing_listener_never_fails_the_call() -> None:
    def broken(record: CallRecord) -> None:
        raise OSError("disk full")

    records: list[CallRecord] = []
    monitor = PerformanceMonitor([broken, records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata=META)
    await monitor.on_llm_end(result("ok", 1, 1), run_id=run)

    assert len(records) == 1
