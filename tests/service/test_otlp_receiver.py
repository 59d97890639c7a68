"""The OTLP receiver double, driven by the real OpenTelemetry SDK and its OTLP/HTTP exporters: what
they send is what the receiver decodes, and its faults are the failures the exporters see."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.helpers.otlp_receiver import OtlpReceiver, running_otlp_receiver

RESOURCE = Resource.create({"service.name": "otlp-receiver-test", "deployment.environment": "test"})


@pytest.fixture(scope="module")
def otlp_server() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as receiver:
        yield receiver


@pytest.fixture
def otlp(otlp_server: OtlpReceiver) -> OtlpReceiver:
    otlp_server.reset()
    return otlp_server


def one_span(name: str = "lone") -> ReadableSpan:
    """A finished SDK span, to hand to an exporter directly."""
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    span = provider.get_tracer("tests.otlp").start_span(name)
    span.end()
    assert isinstance(span, ReadableSpan)
    return span


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_spans_arrive_decoded_with_ids_parenting_kinds_attributes_events_and_status(
    otlp: OtlpReceiver, compression: Compression
) -> None:
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    exporter = OTLPSpanExporter(endpoint=otlp.endpoint + "/v1/traces", timeout=2, compression=compression)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp")
    try:
        with tracer.start_as_current_span(
            "POST /chat/invoke",
            kind=SpanKind.SERVER,
            attributes={
                "http.route": "/chat/invoke",
                "cache.hit": False,
                "http.status_code": 200,
                "llm.temperature": 0.25,
                "llm.ladder": ["gpt-4o", "gemini-flash"],
                "llm.retries": [0, 2],
            },
        ) as parent:
            with tracer.start_as_current_span("provider call", kind=SpanKind.CLIENT) as child:
                child.add_event("retry", {"attempt": 2, "reason": "503"})
                child.set_status(Status(StatusCode.ERROR, "provider answered 503"))
        assert provider.force_flush(5_000)
    finally:
        provider.shutdown()

    trace_id = format(parent.get_span_context().trace_id, "032x")
    received = otlp.trace(trace_id)
    assert [s.name for s in received] == ["POST /chat/invoke", "provider call"]
    server, client = received
    assert server.span_id == format(parent.get_span_context().span_id, "016x")
    assert client.span_id == format(child.get_span_context().span_id, "016x")
    assert (server.parent_id, client.parent_id) == (None, server.span_id)
    assert otlp.children_of(server) == [client]
    assert otlp.by_name("provider call") == [client]
    assert (server.kind, client.kind) == ("SERVER", "CLIENT")
    assert server.attributes == {
        "http.route": "/chat/invoke",
        "cache.hit": False,
        "http.status_code": 200,
        "llm.temperature": 0.25,
        "llm.ladder": ("gpt-4o", "gemini-flash"),
        "llm.retries": (0, 2),
    }
    assert [(e.name, e.attributes) for e in client.events] == [("retry", {"attempt": 2, "reason": "503"})]
    assert client.start_unix_nano <= client.events[0].time_unix_nano <= client.end_unix_nano
    assert (client.status_code, client.status_message) == ("ERROR", "provider answered 503")
    assert (server.status_code, server.status_message) == ("UNSET", "")
    assert server.start_unix_nano <= client.start_unix_nano <= client.end_unix_nano <= server.end_unix_nano
    assert server.resource["service.name"] == "otlp-receiver-test"
    assert server.scope == "tests.otlp"
    assert otlp.exports == {"/v1/traces": 1}


def test_metric_points_arrive_as_a_histogram_and_a_sum(otlp: OtlpReceiver) -> None:
    exporter = OTLPMetricExporter(endpoint=otlp.endpoint + "/v1/metrics", timeout=2)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE, shutdown_on_exit=False)
    meter = provider.get_meter("tests.otlp")
    try:
        duration = meter.create_histogram("llm.duration", unit="s", explicit_bucket_boundaries_advisory=[0.5, 1, 2])
        duration.record(0.2, {"model": "gpt-4o"})
        duration.record(1.5, {"model": "gpt-4o"})
        requests = meter.create_counter("llm.requests", unit="{request}")
        requests.add(3, {"model": "gpt-4o", "outcome": "ok"})
        assert provider.force_flush(5_000)

        points = otlp.wait_for_metrics(lambda ps: {p.name for p in ps} >= {"llm.duration", "llm.requests"})
    finally:
        provider.shutdown()

    (histogram,) = [p for p in points if p.name == "llm.duration"]
    assert (histogram.kind, histogram.unit, histogram.attributes) == ("histogram", "s", {"model": "gpt-4o"})
    assert histogram.count == 2
    assert histogram.value == pytest.approx(1.7)
    assert histogram.explicit_bounds == (0.5, 1.0, 2.0)
    assert histogram.bucket_counts == (1, 0, 1, 0)
    (counter,) = [p for p in points if p.name == "llm.requests"]
    assert (counter.kind, counter.unit, counter.value) == ("sum", "{request}", 3)
    assert counter.attributes == {"model": "gpt-4o", "outcome": "ok"}
    assert (counter.count, counter.bucket_counts) == (None, ())
    assert counter.resource["service.name"] == "otlp-receiver-test"
    assert counter.scope == "tests.otlp"
    assert otlp.metrics("llm.requests")[0] == counter


def test_fail_with_makes_the_exporter_fail_until_cleared(otlp: OtlpReceiver) -> None:
    exporter = OTLPSpanExporter(endpoint=otlp.endpoint + "/v1/traces", timeout=0.5)  # shorter than one backoff
    try:
        otlp.fail_with(503)
        assert exporter.export([one_span("refused")]) is SpanExportResult.FAILURE
        assert otlp.exports == {"/v1/traces": 1}
        assert otlp.spans() == []

        otlp.fail_with(None)
        assert exporter.export([one_span("accepted")]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert [s.name for s in otlp.spans()] == ["accepted"]


def test_stop_refuses_connections_and_start_serves_again_on_the_same_port(otlp: OtlpReceiver) -> None:
    port = otlp.port
    exporter = OTLPSpanExporter(endpoint=otlp.endpoint + "/v1/traces", timeout=0.5)
    try:
        otlp.stop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert exporter.export([one_span("while down")]) is SpanExportResult.FAILURE

        otlp.start()
        assert otlp.port == port
        assert exporter.export([one_span("after restart")]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert [s.name for s in otlp.spans()] == ["after restart"]


def test_hang_holds_an_export_until_release(otlp: OtlpReceiver) -> None:
    exporter = OTLPSpanExporter(endpoint=otlp.endpoint + "/v1/traces", timeout=5)
    results: list[SpanExportResult] = []
    otlp.hang()
    sender = threading.Thread(target=lambda: results.append(exporter.export([one_span("held")])))
    sender.start()
    try:
        otlp.wait_for_exports(1)
        assert (otlp.spans(), results) == ([], [])
        otlp.release()
        sender.join(timeout=5)
    finally:
        otlp.release()
        exporter.shutdown()
    assert results == [SpanExportResult.SUCCESS]
    assert [s.name for s in otlp.spans()] == ["held"]


def test_wait_for_says_what_it_saw_when_it_times_out(otlp: OtlpReceiver) -> None:
    exporter = OTLPSpanExporter(endpoint=otlp.endpoint + "/v1/traces", timeout=2)
    try:
        assert exporter.export([one_span("the only one")]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    with pytest.raises(AssertionError, match=r"(?s)1 span.*'the only one' INTERNAL"):
        otlp.wait_for(lambda spans: any(s.name == "never sent" for s in spans), timeout_s=0.1)


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Content-Type": "application/x-protobuf"}, b"\xff\xff not protobuf", 400),
        ({"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, b"not gzip", 400),
        ({"Content-Type": "application/json"}, b"{}", 415),
    ],
)
def test_a_request_no_collector_would_take_is_refused(
    otlp: OtlpReceiver, headers: dict[str, str], body: bytes, status: int
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", otlp.port, timeout=2)
    try:
        connection.request("POST", "/v1/traces", body=body, headers=headers)
        assert connection.getresponse().status == status
    finally:
        connection.close()
    assert (otlp.exports, otlp.spans()) == ({"/v1/traces": 1}, [])


def test_an_empty_gzip_export_is_a_valid_empty_request(otlp: OtlpReceiver) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", otlp.port, timeout=2)
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    try:
        connection.request("POST", "/v1/metrics", body=gzip.compress(b""), headers=headers)
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert (otlp.exports, otlp.metrics()) == ({"/v1/metrics": 1}, [])
