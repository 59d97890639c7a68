"""The server span of every request (FastAPI's OpenTelemetry instrumentation), when tracing is on.

It continues an incoming ``traceparent`` (the propagators of ``OTEL_PROPAGATORS``, W3C trace
context by default), names the span by its route template (``POST /chat/invoke``), and leaves
out the per-message ``send``/``receive`` spans, which on a stream would be one per chunk.
Scrapes, health checks and the dashboard's polling are not traced, unless the standard
``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` says otherwise. ``RequestContextMiddleware`` returns the
trace id to the client as ``X-Trace-Id``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from tracing.telemetry import Telemetry

_OPERATIONS = "/metrics$,/health$,/dashboard,/monitoring/"  # polled by machines and the dashboard


def trace_requests(app: FastAPI, telemetry: Telemetry) -> None:
    if telemetry.tracer_provider is None:
        return
    given = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        excluded_urls=None if given else _OPERATIONS,  # None: the instrumentation reads the variables
        exclude_spans=["receive", "send"],
    )


def current_trace_id() -> str | None:
    """The active trace's id in hex (the request's, inside the server span); None: not traced, or
    left out by the sampler (no tool would find it)."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid and context.trace_flags.sampled else None
