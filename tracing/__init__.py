"""OpenTelemetry traces and metrics with the GenAI semantic conventions, off unless the standard
``OTEL_*`` variables switch them on (``tracing.telemetry``).

One request is one trace::

    POST /chat/invoke            server span (FastAPI's instrumentation; continues a traceparent)
      ladder chat                a ladder's way down its rungs (``tracing.ladder_spans``): skips,
      |                          retries and continuations as events, which rung served, or why none
      +- chat gpt-4o-mini        one span per model call (``tracing.call_spans``), from the same
      +- chat SmolLM2-...        values as its call record: tokens, models, cost, cause

and the conventions' client metrics come from the call records (``tracing.genai_metrics``).
Exporting is batched in a background thread; a collector that is down or slow costs dropped,
counted spans, never a request (``tracing.span_export``).
"""
