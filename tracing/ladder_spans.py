"""``LadderSpan``: the span of one request's way down a fallback ladder, and ``LadderTracer``, which
starts them. ``NO_LADDER_SPAN`` stands in when tracing is off: the ladder calls the same methods
and nothing happens.

The span is the parent of the ladder's model calls (``current()`` makes it the active span while
a call starts, so the call's span, begun by the call recorder, hangs under it) and carries what
the ladder decided: the policy's routing, the response cache's word, each rung skipped without a
call (breaker open, deadline, context window, budget...), each retry with its wait, each
continuation of a broken stream, and at its end the rung that served or the error that ended it.

State: each span belongs to one request's ``Trial``; the tracer holds only the SDK's tracer.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from tracing import genai
from vocabulary.run_metadata import REQUEST_ID, ROUTE, ROUTING, TIER


class LadderSpan:
    def __init__(self, span: Span):
        self.span = span

    def __enter__(self) -> LadderSpan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """End the span; an error ends it as the ladder's failure (a client that left: cancelled)."""
        if error is not None:
            if isinstance(error, Exception):
                code = str(getattr(error, "code", "") or type(error).__name__)
                self.span.set_attribute(genai.ERROR_TYPE, code)
                self.span.set_status(Status(StatusCode.ERROR, str(error)))
            else:  # cancelled, or the consumer closed the stream
                self.span.set_attribute(genai.ERROR_TYPE, genai.CANCELLED)
        self.span.end()

    def current(self) -> AbstractContextManager[Any]:
        """The scope in which a model call starts, so its span is this one's child. It must not
        span a yield (the consumer of a stream may resume the ladder in another context)."""
        return trace.use_span(self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False)

    def cache(self, result: str) -> None:
        self.span.set_attribute(genai.CACHE, result)

    def skipped(self, rung: int, model: str, deployment: str, cause: str, detail: str) -> None:
        self.span.add_event(
            genai.SKIP,
            {genai.RUNG: rung, genai.GEN_AI_REQUEST_MODEL: model, genai.DEPLOYMENT: deployment, genai.CAUSE: cause,
             genai.DETAIL: detail},
        )  # fmt: skip

    def retrying(self, rung: int, model: str, cause: str, tries: int, wait_s: float) -> None:
        self.span.add_event(
            genai.RETRY,
            {genai.RUNG: rung, genai.GEN_AI_REQUEST_MODEL: model, genai.CAUSE: cause, genai.TRY: tries + 1,
             genai.WAIT_S: wait_s},
        )  # fmt: skip

    def continuing(self, rung: int, model: str, continues: str | None, at_char: int, form: str) -> None:
        attributes: dict[str, str | int] = {genai.RUNG: rung, genai.GEN_AI_REQUEST_MODEL: model, genai.AT_CHAR: at_char,
                                            genai.FORM: form}  # fmt: skip
        if continues is not None:
            attributes[genai.CONTINUES] = continues
        self.span.add_event(genai.CONTINUATION, attributes)

    def served(self, model: str, rung: int, tries: int) -> None:
        self.span.set_attributes({genai.SERVED_MODEL: model, genai.SERVED_RUNG: rung, genai.ATTEMPTS: tries})


class _NoLadderSpan(LadderSpan):
    """Tracing is off: every method does nothing."""

    def __init__(self) -> None:
        self.span = trace.INVALID_SPAN

    def __exit__(self, *exc: Any) -> None:
        return None

    def current(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def cache(self, result: str) -> None:
        return None

    def skipped(self, rung: int, model: str, deployment: str, cause: str, detail: str) -> None:
        return None

    def retrying(self, rung: int, model: str, cause: str, tries: int, wait_s: float) -> None:
        return None

    def continuing(self, rung: int, model: str, continues: str | None, at_char: int, form: str) -> None:
        return None

    def served(self, model: str, rung: int, tries: int) -> None:
        return None


NO_LADDER_SPAN: LadderSpan = _NoLadderSpan()


class LadderTracer:
    def __init__(self, tracer: Tracer):
        self.tracer = tracer

    def start(self, ladder: str, metadata: Mapping[str, Any]) -> LadderSpan:
        """The span of a ladder run with ``metadata`` (who, which route, the policy's decision),
        a child of the active span (the request's)."""
        attributes: dict[str, Any] = {
            genai.GEN_AI_OPERATION_NAME: genai.WORKFLOW,
            genai.GEN_AI_WORKFLOW_NAME: ladder,
            genai.LADDER: ladder,
        }
        for key, name in ((REQUEST_ID, genai.REQUEST_ID), (ROUTE, genai.ROUTE), (TIER, genai.TIER)):
            if metadata.get(key) is not None:
                attributes[name] = str(metadata[key])
        routing = metadata.get(ROUTING)
        if isinstance(routing, Mapping):
            attributes.update(genai.flat(genai.ROUTING, routing))
        span = self.tracer.start_span(f"ladder {ladder}", kind=SpanKind.INTERNAL, attributes=attributes)
        return LadderSpan(span)
