"""The stream guard on synthetic streams: first-token deadline, stalls, cut streams, the
request deadline and injected faults. Limits are tens of milliseconds: what is measured is the
guard's own timer, so the streams here hang on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from errors import Cause, ProviderError
from providers.guard import Guard
from resilience.deadline import deadline_scope
from resilience.faults import FaultPlan, FaultSpec


def chunk(text: str, finish: str | None = None) -> ChatGenerationChunk:
    info = {"finish_reason": finish} if finish else None
    return ChatGenerationChunk(message=AIMessageChunk(content=text), generation_info=info)


async def stream(*parts: ChatGenerationChunk | float) -> AsyncIterator[ChatGenerationChunk]:
    """Yields chunks; a float is a pause of that many seconds (a hang when large)."""
    for part in parts:
        if isinstance(part, float):
            await asyncio.sleep(part)
        else:
            yield part


async def collect(guard: Guard, parts: AsyncIterator[ChatGenerationChunk]) -> list[str]:
    return [str(c.message.content) async for c in guard.stream(parts)]


async def failure(guard: Guard, parts: AsyncIterator[ChatGenerationChunk]) -> Cause:
    with pytest.raises(ProviderError) as caught:
        await collect(guard, parts)
    return caught.value.cause


GUARD = Guard("openai", "gpt-4o-mini", first_token_s=0.05, stall_s=0.05)


async def test_a_complete_stream_passes_untouched() -> None:
    assert await collect(GUARD, stream(chunk("a"), chunk("b"), chunk("", "stop"))) == ["a", "b", ""]


async def test_no_first_token_in_time_is_a_timeout() -> None:
    assert await failure(GUARD, stream(60.0, chunk("late", "stop"))) is Cause.TIMEOUT


async def test_silence_between_chunks_is_a_stalled_stream() -> None:
    assert await failure(GUARD, stream(chunk("a"), 60.0, chunk("b", "stop"))) is Cause.STALLED_STREAM


async def test_a_stream_that_ends_without_a_finish_reason_is_truncated() -> None:
    assert await failure(GUARD, stream(chunk("a"), chunk("b"))) is Cause.TRUNCATED_STREAM
    assert await failure(GUARD, stream()) is Cause.TRUNCATED_STREAM


async def test_finish_reason_in_response_metadata_counts_too() -> None:
    last = ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata={"finish_reason": "STOP"}))
    assert await collect(GUARD, stream(chunk("a"), last)) == ["a", ""]


async def test_the_request_deadline_cuts_a_slow_stream_as_a_timeout() -> None:
    guard = Guard("openai", "gpt-4o-mini", first_token_s=60, stall_s=60)
    with deadline_scope(time.monotonic() + 0.05), pytest.raises(ProviderError, match="request deadline") as caught:
        await collect(guard, stream(chunk("a"), 60.0, chunk("b", "stop")))
    assert caught.value.cause is Cause.TIMEOUT


async def test_injected_faults_fail_or_stall_the_stream() -> None:
    def guard(spec: FaultSpec) -> Guard:
        return Guard("openai", "gpt-4o-mini", first_token_s=0.05, stall_s=0.05, faults=FaultPlan({"openai": spec}))

    parts = (chunk("a"), chunk("b", "stop"))
    assert await failure(guard(FaultSpec(kind="status", status=503)), stream(*parts)) is Cause.SERVER_ERROR
    with pytest.raises(ProviderError) as caught:
        await collect(guard(FaultSpec(kind="rate_limit", retry_after_s=7)), stream(*parts))
    assert (caught.value.cause, caught.value.retry_after) == (Cause.RATE_LIMITED, 7)
    assert await failure(guard(FaultSpec(kind="stall")), stream(*parts)) is Cause.STALLED_STREAM
    assert await failure(guard(FaultSpec(kind="slow", delay_s=60)), stream(*parts)) is Cause.TIMEOUT
    assert await collect(guard(FaultSpec(kind="status", probability=0)), stream(*parts)) == ["a", "b"]
