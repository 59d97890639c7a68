"""``CountedBatchExport``: the SDK's ``BatchSpanProcessor`` (a bounded queue, exported in batches by
a background thread, so a request only appends to a queue), counting every span it loses: those
that found the queue full (a collector slower than the traffic) and those in a batch the
collector refused or never answered. A collector that is down or slow costs spans, counted in
``dropped``, and never a request.

The SDK logs a queue-full drop but counts it nowhere we can read: the queue's length is kept here
from what went in (``on_end``) and what the exporter took out (``export``). State: three counts
under one lock, from request threads and the export thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

DEFAULT_QUEUE = 2048  # the SDK's default for OTEL_BSP_MAX_QUEUE_SIZE


class _Queue:
    def __init__(self, capacity: int, on_drop: Callable[[int, str], None]):
        self.capacity = capacity
        self.on_drop = on_drop
        self._lock = threading.Lock()
        self._queued = 0
        self.dropped = 0

    def entered(self) -> None:
        with self._lock:
            if self._queued >= self.capacity:  # the SDK's queue drops its oldest span for this one
                self.dropped += 1
                full = True
            else:
                self._queued += 1
                full = False
        if full:
            self.on_drop(1, "queue_full")

    def left(self, count: int) -> None:
        with self._lock:
            self._queued = max(0, self._queued - count)

    def lost(self, count: int, reason: str) -> None:
        with self._lock:
            self.dropped += count
        self.on_drop(count, reason)


class _CountingExporter(SpanExporter):
    def __init__(self, exporter: SpanExporter, queue: _Queue):
        self.exporter = exporter
        self.queue = queue

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.queue.left(len(spans))
        try:
            result = self.exporter.export(spans)
        except Exception:
            self.queue.lost(len(spans), "export_failed")
            raise
        if result is not SpanExportResult.SUCCESS:
            self.queue.lost(len(spans), "export_failed")
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class CountedBatchExport(BatchSpanProcessor):
    def __init__(
        self,
        exporter: SpanExporter,
        *,
        on_drop: Callable[[int, str], None] = lambda count, reason: None,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
    ):
        """``on_drop(count, reason)``: spans lost, ``queue_full`` or ``export_failed``.
        The sizes default to the ``OTEL_BSP_*`` variables, as the SDK's processor does."""
        self._counted = _Queue(max_queue_size or _queue_size_from_env(), on_drop)
        super().__init__(
            _CountingExporter(exporter, self._counted),
            max_queue_size=self._counted.capacity,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
        )

    @property
    def dropped(self) -> int:
        return self._counted.dropped

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._counted.entered()
        super().on_end(span)


def _queue_size_from_env() -> int:
    return BatchSpanProcessor._default_max_queue_size()  # reads OTEL_BSP_MAX_QUEUE_SIZE, as the SDK does
