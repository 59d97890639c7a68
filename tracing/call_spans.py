"""``CallSpans``: one span per model call (kind CLIENT, named ``chat {model}`` as the GenAI
conventions name it), begun when the call starts and ended from the call's own ``CallRecord``, so
the span and the record cannot disagree on tokens, models, cost or cause.

Prompt and answer text go on the span only when the operator opts in
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), as ``gen_ai.input.messages`` and
``gen_ai.output.messages``, with every secret this process knows and every key-shaped token
replaced (``errors.secrets.redact_keys``). Error text on a span is the record's, which
``errors.describe`` already made safe.

State: none; the call recorder keeps each call's span with the call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from errors.secrets import redact_keys
from tracing import genai
from vocabulary import Outcome
from vocabulary.records import CallRecord
from vocabulary.run_metadata import (
    ALTERNATIVE,
    BREAKER_STATE,
    CONTINUES,
    DEPLOYMENT,
    LADDER,
    LADDER_RUNG,
    REQUEST_ID,
    ROUTE,
    TIER,
    USAGE_ESTIMATED,
)

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "AIMessageChunk": "assistant"}
_FROM_METADATA = (
    (LADDER, genai.LADDER),
    (ALTERNATIVE, genai.ALTERNATIVE),
    (DEPLOYMENT, genai.DEPLOYMENT),
    (BREAKER_STATE, genai.BREAKER_STATE),
    (REQUEST_ID, genai.REQUEST_ID),
    (ROUTE, genai.ROUTE),
    (TIER, genai.TIER),
)


@dataclass(frozen=True)
class Message:
    """One prompt message as the span shows it: a role (LangChain's ``type``) and its text."""

    role: str
    text: str


@dataclass(frozen=True)
class Answer:
    """What the provider said of a call that ended well (read off its result by the recorder)."""

    model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    response_id: str | None = None
    text: str = ""


def span_ids(span: Span) -> tuple[str, str] | None:
    """``span``'s trace and span ids in hex, as trace tools show them; None: not recorded."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class CallSpans:
    def __init__(self, tracer: Tracer, *, capture_content: bool = False):
        self.tracer = tracer
        self.capture_content = capture_content

    def start(
        self,
        *,
        provider: str,
        model: str,
        metadata: Mapping[str, Any],
        max_tokens: int | None,
        messages: Sequence[Message] = (),
    ) -> Span:
        """The span of a call starting now, a child of the active span (its ladder's)."""
        attributes: dict[str, Any] = {
            genai.GEN_AI_OPERATION_NAME: genai.CHAT,
            genai.GEN_AI_PROVIDER_NAME: genai.provider_name(provider),
            genai.GEN_AI_REQUEST_MODEL: model,
        }
        temperature = metadata.get("ls_temperature")
        if isinstance(temperature, int | float):
            attributes[genai.GEN_AI_REQUEST_TEMPERATURE] = float(temperature)
        if max_tokens is not None:
            attributes[genai.GEN_AI_REQUEST_MAX_TOKENS] = int(max_tokens)
        for key, name in _FROM_METADATA:
            if metadata.get(key) is not None:
                attributes[name] = str(metadata[key])
        rung = metadata.get(LADDER_RUNG)
        if rung is not None:
            attributes[genai.RUNG] = int(rung)
        continues = metadata.get(CONTINUES)
        if isinstance(continues, Mapping) and continues.get("model"):
            attributes[genai.CONTINUES] = str(continues["model"])
        if self.capture_content and messages:
            attributes[genai.GEN_AI_INPUT_MESSAGES] = _messages_json(messages)
        return self.tracer.start_span(f"{genai.CHAT} {model}", kind=SpanKind.CLIENT, attributes=attributes)

    @staticmethod
    def first_token(span: Span) -> None:
        span.add_event(genai.FIRST_TOKEN)

    def end(self, span: Span, record: CallRecord, answer: Answer | None = None) -> None:
        """End ``span`` with what ``record`` says the call used and how it ended."""
        attributes: dict[str, Any] = {
            genai.GEN_AI_USAGE_INPUT_TOKENS: record.input_tokens,
            genai.GEN_AI_USAGE_OUTPUT_TOKENS: record.output_tokens,
            genai.OUTCOME: record.outcome.value,
            genai.RUN_ID: record.run_id,
        }
        if record.cached_input_tokens:
            attributes[genai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = record.cached_input_tokens
        if record.reasoning_tokens:
            attributes[genai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = record.reasoning_tokens
        if record.cost_usd is not None:
            attributes[genai.COST_USD] = float(record.cost_usd)
        if record.first_token_s is not None:
            attributes[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = record.first_token_s
        if record.metadata.get(USAGE_ESTIMATED):
            attributes[genai.USAGE_ESTIMATED] = True
        if answer is not None:
            if answer.model:
                attributes[genai.GEN_AI_RESPONSE_MODEL] = answer.model
            if answer.finish_reasons:
                attributes[genai.GEN_AI_RESPONSE_FINISH_REASONS] = list(answer.finish_reasons)
            if answer.response_id:
                attributes[genai.GEN_AI_RESPONSE_ID] = answer.response_id
            if self.capture_content:
                attributes[genai.GEN_AI_OUTPUT_MESSAGES] = _answer_json(answer)
        span.set_attributes(attributes)
        if record.outcome is not Outcome.OK:
            span.set_attribute(genai.ERROR_TYPE, record.cause or record.outcome.value)
            span.set_status(Status(StatusCode.ERROR, record.error or record.outcome.value))
        span.end()


def _messages_json(messages: Sequence[Message]) -> str:
    return json.dumps(
        [{"role": _ROLES.get(m.role, m.role), "parts": [{"type": "text", "content": redact_keys(m.text)}]}
         for m in messages]
    )  # fmt: skip


def _answer_json(answer: Answer) -> str:
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": redact_keys(answer.text)}]}
    if answer.finish_reasons:
        message["finish_reason"] = answer.finish_reasons[0]
    return json.dumps([message])
