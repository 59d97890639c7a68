"""Server-side monitoring handlers on their own: one correct record per LLM attempt, interleaved,
cut short or failing. (32 concurrent requests through the app: ``tests/service/``.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

from callbacks.call_recorder import CallRecorder
from monitoring.pricing import Price, PriceTable, Usage
from monitoring.stats import summarize
from tests.helpers.clock import FakeClock
from vocabulary.records import CallRecord

PRICES = PriceTable({"m": Price(Decimal("1"), Decimal("0.5"), Decimal("2"))})


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
    monitor = CallRecorder([records.append], PRICES, clock=clock, wall_clock=WALL)
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
    monitor = CallRecorder([records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata=META)
    await monitor.on_llm_end(result("ok", 7, 9), run_id=run)

    (record,) = records
    assert (record.input_tokens, record.output_tokens, record.outcome) == (7, 9, "ok")


async def test_an_unpriced_model_is_recorded_with_no_cost_not_zero() -> None:
    records: list[CallRecord] = []
    monitor = CallRecorder([records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata={"ls_model_name": "mystery"})
    await monitor.on_llm_end(result("ok", 7, 9), run_id=run)

    assert records[0].cost_usd is None
    assert summarize(records)["totals"]["unpriced_calls"] == 1


async def test_a_client_leaving_mid_stream_is_recorded_as_cancelled() -> None:
    records: list[CallRecord] = []
    monitor = CallRecorder([records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata=META)
    await monitor.on_llm_error(GeneratorExit(), run_id=run)

    assert (records[0].outcome, records[0].cause) == ("cancelled", "cancelled")
    assert (records[0].output_tokens, records[0].cost_usd) == (0, None)
    assert summarize(records)["totals"]["errors"] == 0


async def test_a_call_cut_short_is_charged_for_the_tokens_streamed_until_then() -> None:
    records: list[CallRecord] = []
    monitor = CallRecorder([records.append], PRICES)
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
    monitor = CallRecorder([broken, records.append], PRICES)
    run = uuid4()

    await monitor.on_chat_model_start({}, [[HumanMessage("q")]], run_id=run, metadata=META)
    await monitor.on_llm_end(result("ok", 1, 1), run_id=run)

    assert len(records) == 1
