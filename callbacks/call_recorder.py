"""``CallRecorder``: one ``CallRecord`` per LLM attempt, handed to every listener (the
store, the alert engine, the metrics exporter, the slow-call log), and, when tracing is on, one
span per attempt (``tracing.call_spans``), ended from the same record; the record keeps the
span's trace and span ids.

State: ``_calls`` holds the calls in flight, keyed by run id and dropped when the call ends.
Every call has its own start time, so concurrent calls never share one (the seed's bug).
Handlers are async and do no I/O; listeners must be quick too (the store only queues).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult
from opentelemetry.trace import Span

from callbacks.usage import answer_of, finish_reasons_of, model_of, response_id_of, usage_of
from errors import classify, describe
from monitoring.pricing import PriceTable, Usage
from policy.limits import estimate_prompt_tokens
from resilience.output_cap import current_output_cap
from tracing.call_spans import Answer, CallSpans, Message, span_ids
from vocabulary import Outcome
from vocabulary.records import CallRecord
from vocabulary.run_metadata import (
    ACCESS,
    ALTERNATIVE,
    BAD_CHUNKS,
    LADDER,
    LADDER_RUNG,
    PRICE_KEY,
    REQUEST_ID,
    ROOT_RUN_ID,
    ROUTE,
    SPAN_ID,
    TEXT_CHUNKS,
    TRACE_ID,
    USAGE_ESTIMATED,
)

logger = logging.getLogger("llm_server.monitoring")

# Run metadata kept in its own columns or of no use later; the rest is who called (user_id, tier,
# api_key_id), why this model answered (routing), and the client's own metadata under "client".
_SERVER_KEYS = (
    REQUEST_ID,
    ROOT_RUN_ID,
    ROUTE,
    LADDER,
    LADDER_RUNG,
    ALTERNATIVE,
    "ls_provider",
    "ls_model_name",
    ACCESS,
)


def _bad_chunks_of(response: LLMResult) -> int:
    """Stream chunks the call skipped because they were not JSON (``providers.guard``)."""
    for generations in response.generations:
        for generation in generations:
            count = (generation.generation_info or {}).get(BAD_CHUNKS)
            if count:
                return int(count)
    return 0


@dataclass
class _Call:
    started: float
    started_at: datetime
    root_run_id: str | None
    provider: str
    model: str
    prompt_chars: int
    tags: list[str]
    metadata: dict[str, Any]
    price_key: str | None = None  # the deployment's key in the price table, when it names one
    first_token: float | None = None
    # Tokens seen so far, for a call that ends early: what the chunks' usage reported, and how
    # many chunks carried text (about one token each) for providers that report usage only last.
    usage_input: int = 0
    usage_output: int = 0
    text_chunks: int = 0
    prompt: str | None = None  # kept by reference, to estimate the prompt's tokens if the call ends early
    span: Span | None = None  # the call's trace span, when tracing is on

    def usage_so_far(self) -> Usage:
        """What a call cut short is billed for: the usage its chunks reported; without it, once
        the model answered, its prompt (estimated: the provider read it all) and a token a chunk."""
        input_tokens = self.usage_input
        if not input_tokens and self.first_token is not None and self.prompt:
            input_tokens = estimate_prompt_tokens(self.prompt)
        return Usage(input_tokens=input_tokens, output_tokens=max(self.usage_output, self.text_chunks))


class CallRecorder(AsyncCallbackHandler):
    # Only LLM events matter, and handling them is quick and never blocks: skip chain events and
    # let LangChain await the handler inline instead of scheduling it.
    ignore_chain = True
    run_inline = True

    def __init__(
        self,
        listeners: Sequence[Callable[[CallRecord], None]],
        prices: PriceTable,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        spans: CallSpans | None = None,
    ):
        """``spans``: trace each call (None: tracing is off)."""
        self.listeners = list(listeners)
        self.prices = prices
        self.spans = spans
        self._clock = clock
        self._wall_clock = wall_clock
        self._calls: dict[UUID, _Call] = {}
        self._running: Counter[str] = Counter()  # calls in flight per model

    def in_flight(self, model: str) -> int:
        """Calls of ``model`` started and not yet ended."""
        return self._running[model]

    def _end(self, run_id: UUID) -> _Call | None:
        call = self._calls.pop(run_id, None)
        if call is not None:
            self._running[call.model] -= 1
        return call

    def _begin(
        self,
        prompt_chars: int,
        run_id: UUID,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        messages: list[Message] | None = None,
    ) -> None:
        metadata = dict(metadata or {})
        call = self._calls[run_id] = _Call(
            started=self._clock(),
            started_at=self._wall_clock(),
            root_run_id=metadata.get(ROOT_RUN_ID),
            provider=str(metadata.get("ls_provider") or "unknown"),
            model=str(metadata.get("ls_model_name") or "unknown"),
            prompt_chars=prompt_chars,
            tags=list(tags or []),
            metadata=metadata,
            price_key=metadata.get(PRICE_KEY),
        )
        self._running[call.model] += 1
        if self.spans is not None:
            # Started where the call starts, so its parent is the ladder's span (active there).
            max_tokens = metadata.get("ls_max_tokens") or current_output_cap()
            call.span = self.spans.start(
                provider=call.provider, model=call.model, metadata=metadata, max_tokens=max_tokens,
                messages=messages or (),
            )  # fmt: skip

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        texts = [m.text for batch in messages for m in batch]
        shown = [Message(m.type, m.text) for batch in messages for m in batch] if self.spans is not None else None
        self._begin(sum(map(len, texts)), run_id, tags, metadata, shown)
        self._calls[run_id].prompt = "\n".join(texts) if len(texts) > 1 else (texts[0] if texts else "")

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._begin(sum(len(p) for p in prompts), run_id, tags, metadata)

    async def on_llm_new_token(
        self, token: Any, *, chunk: GenerationChunk | ChatGenerationChunk | None = None, run_id: UUID, **kwargs: Any
    ) -> None:
        call = self._calls.get(run_id)
        if call is None:
            return
        if call.first_token is None:
            call.first_token = self._clock()
            if call.span is not None:
                CallSpans.first_token(call.span)
        call.text_chunks += int(kwargs.get(TEXT_CHUNKS, 1 if token else 0))
        usage = getattr(getattr(chunk, "message", None), "usage_metadata", None)
        if usage:
            call.usage_input += int(usage.get("input_tokens", 0))
            call.usage_output += int(usage.get("output_tokens", 0))

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._end(run_id)
        if call is None:
            return
        usage = usage_of(response)
        cost = self.prices.cost(call.price_key or model_of(response) or call.model, usage)
        bad_chunks = _bad_chunks_of(response)
        record = self._record(
            call,
            run_id,
            outcome=Outcome.OK,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=cost,
            answer_chars=len(answer_of(response)),
            # No column of its own (the SQLite file has no migrations): kept with the metadata.
            extra={BAD_CHUNKS: bad_chunks} if bad_chunks else None,
        )
        if call.span is not None and self.spans is not None:
            answer = Answer(model_of(response), finish_reasons_of(response), response_id_of(response),
                            answer_of(response) if self.spans.capture_content else "")  # fmt: skip
            self.spans.end(call.span, record, answer)
        self.publish(record)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._end(run_id)
        if call is None:
            return
        cause = classify(error)
        outcome = Outcome.of_failure(cause)
        # A call cut short (the client left, the stream stalled) still used, and is billed for,
        # the tokens streamed until then.
        usage = call.usage_so_far()
        cost = self.prices.cost(call.price_key or call.model, usage) if usage.total_tokens else None
        record = self._record(
            call,
            run_id,
            outcome=outcome,
            cause=cause.value,
            error=describe(error),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=cost,
            # No column of its own: kept with the metadata, as the bad chunks are.
            extra={USAGE_ESTIMATED: True} if usage.input_tokens and not call.usage_input else None,
        )
        if call.span is not None and self.spans is not None:
            self.spans.end(call.span, record)
        self.publish(record)

    def publish(self, record: CallRecord) -> None:
        """Hand ``record`` to every listener: each call's, and a record made elsewhere (a cache hit's)."""
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:  # monitoring must never fail the user's request
                logger.exception("call-record listener %r failed", listener)

    def _record(
        self,
        call: _Call,
        run_id: UUID,
        *,
        outcome: Outcome,
        cost: Any,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        answer_chars: int = 0,
        cause: str | None = None,
        error: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> CallRecord:
        meta = call.metadata
        client_meta = {k: v for k, v in meta.items() if k not in _SERVER_KEYS and not k.startswith(("__", "ls_"))}
        if extra:
            client_meta.update(extra)
        ids = span_ids(call.span) if call.span is not None else None
        if ids is not None:
            client_meta[TRACE_ID], client_meta[SPAN_ID] = ids
        rung = meta.get(LADDER_RUNG)
        return CallRecord(
            run_id=str(run_id),
            root_run_id=call.root_run_id,
            request_id=meta.get(REQUEST_ID),
            route=meta.get(ROUTE),
            ladder=meta.get(LADDER),
            rung=int(rung) if rung is not None else None,
            alternative=meta.get(ALTERNATIVE),
            provider=call.provider,
            model=call.model,
            started_at=call.started_at,
            duration_s=self._clock() - call.started,
            first_token_s=None if call.first_token is None else call.first_token - call.started,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
            cost_usd=cost,
            outcome=outcome,
            cause=cause,
            error=error,
            prompt_chars=call.prompt_chars,
            answer_chars=answer_chars,
            tags=call.tags,
            metadata=client_meta,
        )
