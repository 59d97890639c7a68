"""Guards around one model call: the request deadline, the first-token deadline, stalled and cut
streams, and injected faults, all raised inside the model's own LLM run so records, alerts and
breakers see the real cause.

- A stream whose first chunk does not come within ``first_token_s`` fails as ``timeout``; one
  that goes quiet for ``stall_s`` between chunks fails as ``stalled_stream``; one that ends
  without a finish reason fails as ``truncated_stream`` (the OpenAI and Gemini SDKs raise nothing
  then, so without this check a cut answer would pass as complete).
- A call still running at the request's deadline (see ``resilience.deadline``) fails as
  ``timeout``.
- Every wait for the provider counts on the request's ``resilience.provider_wait`` tally: the
  rest of the request's time is the server's own.
- With ``max_bad_chunks`` set, a model whose HTTP client has the ``providers.sse_tolerance``
  hook (OpenAI's), or that reads the events itself (``providers.raw_stream``), skips and counts
  stream events that are not JSON: the count goes in the last chunk's generation info under
  ``bad_chunks``; a stream with more fails as ``malformed_stream``.

``GuardedStream`` is a mixin placed before a chat model class; a model with ``guard=None``
behaves exactly like its base. Remote models are built with ``streaming=True``, so an invoke
streams too and gets the same first-token deadline and cut-stream check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field

from errors import Cause, ProviderError, classify, describe, retry_after_of
from providers.sse_tolerance import BadChunkTally, active_tally
from resilience.deadline import current_deadline_at
from resilience.faults import FaultPlan, FaultSpec
from resilience.output_cap import current_output_cap
from resilience.provider_wait import current_provider_wait, waiting
from vocabulary.run_metadata import BAD_CHUNKS

T = TypeVar("T")


def _finished(chunk: ChatGenerationChunk) -> bool:
    info = chunk.generation_info or {}
    meta = chunk.message.response_metadata or {}
    return bool(info.get("finish_reason") or meta.get("finish_reason"))


def mark_bad_chunk(chunk: ChatGenerationChunk, count: int) -> None:
    # Already yielded, and still seen: LangChain merges the chunks it kept once the stream ends.
    chunk.generation_info = {**(chunk.generation_info or {}), BAD_CHUNKS: count}


def _limit(own: float | None, time_left: float | None) -> tuple[float | None, bool]:
    """The tighter of a guard's own limit and the request's time left; True when the deadline is
    the tighter one."""
    if time_left is None:
        return own, False
    if own is None or time_left < own:
        return max(0.0, time_left), True
    return own, False


@dataclass(frozen=True)
class Guard:
    alternative: str
    model: str
    first_token_s: float | None = None
    stall_s: float | None = None
    faults: FaultPlan | None = None
    clock: Callable[[], float] = time.monotonic
    max_bad_chunks: int | None = None  # None: a chunk that is not JSON ends the stream, as the SDK has it

    def _fault(self) -> FaultSpec | None:
        return self.faults.pick(self.alternative) if self.faults else None

    def _deadline_error(self) -> ProviderError:
        return ProviderError(f"{self.model} was still answering at the request deadline", cause=Cause.TIMEOUT)

    async def stream(
        self,
        chunks: AsyncIterator[T],
        ends_answer: Callable[[T], bool] = _finished,  # type: ignore[assignment]
        mark_bad: Callable[[T, int], None] = mark_bad_chunk,  # type: ignore[assignment]
        counted: BadChunkTally | None = None,
    ) -> AsyncIterator[T]:
        """``chunks`` under the guard: LangChain's chunks, or (``ends_answer`` and ``mark_bad`` given)
        the provider's events as ``providers.raw_stream`` reads them. ``counted``: the tally
        (``bad_chunk_tally``) on which the reader of ``chunks`` counts the events it skips itself;
        without one, the HTTP client's hook (``providers.sse_tolerance``) skips and counts them."""
        fault = self._fault()
        deadline_at = current_deadline_at()  # read once: the scope may be gone after the first chunk
        wait = current_provider_wait()  # the same; and each chunk's wait counted on it without a context manager
        iterator = aiter(chunks)
        first, finished = True, False
        tally = counted if counted is not None else self.bad_chunk_tally()
        for_hook = None if counted is not None else tally
        last: T | None = None
        try:
            if fault is not None:
                await self._before_stream(fault, self._time_left(deadline_at))
            while True:
                own = self.first_token_s if first else self.stall_s
                limit, by_deadline = _limit(own, self._time_left(deadline_at))
                # The SDK's HTTP client is shared: its response hook finds this call's tally here.
                # Set and reset with no yield between, so whichever context resumes us is right.
                token = active_tally.set(for_hook)
                if wait is not None:
                    wait.begin()
                try:
                    async with asyncio.timeout(limit):
                        if not first and fault is not None and fault.kind == "stall":
                            await asyncio.Event().wait()  # an injected stall after the first chunk
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise self._timeout(first, by_deadline, limit) from None
                finally:
                    if wait is not None:
                        wait.end()
                    active_tally.reset(token)
                finished = finished or ends_answer(chunk)
                first = False
                last = chunk
                yield chunk
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if not finished:
            raise ProviderError(
                f"{self.model}'s stream ended without a finish reason (the answer is incomplete)",
                cause=Cause.TRUNCATED_STREAM,
            )
        if tally is not None and tally.count and last is not None:
            mark_bad(last, tally.count)

    def bad_chunk_tally(self) -> BadChunkTally | None:
        """A new count of one call's skipped events; None: a bad event ends the stream."""
        return None if self.max_bad_chunks is None else BadChunkTally(self.max_bad_chunks, self.model)

    def _time_left(self, deadline_at: float | None) -> float | None:
        return None if deadline_at is None else deadline_at - self.clock()

    async def _before_stream(self, fault: FaultSpec, time_left: float | None) -> None:
        limit, by_deadline = _limit(self.first_token_s, time_left)
        try:
            async with asyncio.timeout(limit):
                with waiting():
                    await FaultPlan.before_call(fault, self.model)
        except TimeoutError:
            raise self._timeout(True, by_deadline, limit) from None

    def _timeout(self, first: bool, by_deadline: bool, limit: float | None) -> ProviderError:
        if by_deadline:
            return self._deadline_error()
        if first:
            return ProviderError(f"{self.model} sent no first token within {limit:g}s", cause=Cause.TIMEOUT)
        return ProviderError(f"{self.model}'s stream stalled for {limit:g}s", cause=Cause.STALLED_STREAM)


class GuardedStream(BaseChatModel):
    """Mixin: every stream of this model goes through its ``guard``. A request's own generation
    options (``max_tokens``, ``top_p``, ``seed``; the OpenAI-compatible door passes them) arrive
    under OpenAI's names; ``provider_options`` renames them for the provider."""

    guard: Guard | None = Field(None, exclude=True)

    def provider_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return options

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        chunks = super()._astream(messages, stop, run_manager, **self.call_options(kwargs))
        if self.guard is not None:
            chunks = self.guard.stream(chunks)
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as exc:
            if getattr(exc, "response", None) is None:  # ours (ProviderError), or not from a provider
                raise
            raise provider_failure(exc) from None

    def call_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The request's generation options as the provider takes them, held to the output the
        call's budget hold paid for."""
        cap = current_output_cap()
        if cap is not None and not kwargs.get("max_tokens"):
            kwargs = {**kwargs, "max_tokens": cap}
        return self.provider_options(kwargs)


def provider_failure(exc: Exception) -> ProviderError:
    """A provider SDK's error as ours. The SDK's holds the provider's raw answer, which langchain-core
    copies into the run's output (body and headers: /stream_log shows them to the client), and a
    refused key may be in it: only its key-free description goes on."""
    return ProviderError(describe(exc), cause=classify(exc), retry_after=retry_after_of(exc))
