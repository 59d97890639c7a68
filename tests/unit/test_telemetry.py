"""What the ``OTEL_*`` variables switch on (``tracing.telemetry``), and the span export that counts
what it loses (``tracing.span_export``), with an exporter of the test's own: no sockets."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from errors import ConfigurationError
from tracing.span_export import CountedBatchExport
from tracing.telemetry import DEFAULT_SERVICE_NAME, Telemetry

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}


def test_nothing_is_built_without_an_endpoint_or_with_the_sdk_disabled() -> None:
    assert Telemetry.from_environment({}) is None
    assert Telemetry.from_environment({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}) is None
    assert (
        Telemetry.from_environment({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
        is None
    )


def test_an_endpoint_switches_on_traces_and_metrics_named_after_the_server() -> None:
    telemetry = Telemetry.from_environment(ENDPOINT, service_version="1.2.3")

    assert telemetry is not None
    try:
        assert telemetry.tracer_provider is not None and telemetry.meter_provider is not None
        assert telemetry.export is not None
        attributes = telemetry.tracer_provider.resource.attributes
        assert attributes["service.name"] == DEFAULT_SERVICE_NAME
        assert attributes["service.version"] == "1.2.3"
        assert telemetry.capture_content is False
    finally:
        telemetry.shutdown(timeout_s=1)


def test_message_content_is_the_operators_opt_in_and_metrics_can_stay_off() -> None:
    env = {**ENDPOINT, "OTEL_METRICS_EXPORTER": "none", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    telemetry = Telemetry.from_environment(env)

    assert telemetry is not None
    try:
        assert telemetry.capture_content is True
        assert telemetry.meter_provider is None
    finally:
        telemetry.shutdown(timeout_s=1)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "4318"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "otlp"),
    ],
)
def test_a_variable_this_server_cannot_honour_refuses_the_start(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        Telemetry.from_environment({**ENDPOINT, variable: value})


def test_queue_sizes_that_do_not_fit_refuse_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10")  # the SDK reads these from the process environment
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100")

    with pytest.raises(ConfigurationError, match="max_export_batch_size"):
        Telemetry.from_environment(ENDPOINT)


class HeldExporter(SpanExporter):
    """Takes spans only when the test lets it: a collector that hangs, then answers (or refuses)."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.result = result
        self.release = threading.Event()
        self.entered = threading.Event()
        self.taken: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(10)
        self.taken.extend(span.name for span in spans)
        return self.result


def _provider(export: CountedBatchExport, sampler: object = None) -> TracerProvider:
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()  # type: ignore[arg-type]
    provider.add_span_processor(export)
    return provider


def test_spans_that_find_the_queue_full_are_dropped_and_counted() -> None:
    drops: list[tuple[int, str]] = []
    exporter = HeldExporter()
    export = CountedBatchExport(
        exporter, on_drop=lambda n, why: drops.append((n, why)), max_queue_size=3, max_export_batch_size=1
    )
    tracer = _provider(export).get_tracer("test")
    tracer.start_span("first").end()
    assert exporter.entered.wait(5), "the export thread took the first span and is held"

    for n in range(5):
        tracer.start_span(f"queued {n}").end()

    assert export.dropped == 2 and drops == [(1, "queue_full"), (1, "queue_full")]
    exporter.release.set()
    export.force_flush()
    assert exporter.taken == ["first", "queued 2", "queued 3", "queued 4"]  # the SDK drops the oldest
    export.shutdown()


def test_a_batch_the_collector_refuses_is_counted_lost() -> None:
    drops: list[tuple[int, str]] = []
    exporter = HeldExporter(SpanExportResult.FAILURE)
    exporter.release.set()
    export = CountedBatchExport(exporter, on_drop=lambda n, why: drops.append((n, why)))
    tracer = _provider(export).get_tracer("test")

    for n in range(3):
        tracer.start_span(f"span {n}").end()
    export.force_flush()

    assert export.dropped == 3 and drops == [(3, "export_failed")]
    export.shutdown()


def test_unsampled_spans_are_neither_queued_nor_counted() -> None:
    exporter = HeldExporter()
    exporter.release.set()
    export = CountedBatchExport(exporter, max_queue_size=1, max_export_batch_size=1)
    tracer = _provider(export, ALWAYS_OFF).get_tracer("test")

    for n in range(5):
        tracer.start_span(f"span {n}").end()
    export.force_flush()

    assert export.dropped == 0 and exporter.taken == []
    export.shutdown()


def test_shutdown_gives_up_on_a_collector_that_does_not_answer() -> None:
    exporter = HeldExporter()  # never released: a collector that hangs
    export = CountedBatchExport(exporter, max_export_batch_size=1)
    provider = _provider(export)
    provider.get_tracer("test").start_span("stuck").end()
    assert exporter.entered.wait(5)

    assert Telemetry(provider, None, export, False).shutdown(timeout_s=0.2) is False
    exporter.release.set()
