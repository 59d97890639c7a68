"""A real OTLP/HTTP receiver for the tests: a stand-in OpenTelemetry collector on a free local port.

The server's tracing is tested through the real OpenTelemetry SDK and its real OTLP exporter, so
the suite needs something at the other end of the wire that speaks OTLP/HTTP: ``POST /v1/traces``
and ``POST /v1/metrics`` carrying protobuf (plain, gzip or deflate). The bodies are decoded with
the official definitions from ``opentelemetry-proto``, which keeps the double honest: the tests see
what the exporter really put on the wire, and nothing in this module guesses at the format (a body
that is not protobuf, or not the Content-Type a collector takes, is refused with 400 or 415).
What arrives is kept as small frozen records (``Span``, ``Event``, ``MetricPoint``) that tests can
compare directly.

Faults, for the tests of the exporting side: ``fail_with(503)`` answers every export with that
status, ``hang()`` holds exports until ``release()``, and ``stop()`` closes the listening socket
(connection refused, as when a collector is killed) until ``start()`` serves on the same port.

It is served by ``http.server`` on a thread of its own, not uvicorn: stopping it closes the socket
at once and synchronously, a restart binds the same port again, and every response closes its
connection (HTTP/1.0), so no kept-alive connection outlives a ``stop()``.
"""

from __future__ import annotations

import gzip
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple, TypeAlias, TypeVar
from urllib.parse import urlsplit

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2

TRACES = "/v1/traces"
METRICS = "/v1/metrics"
PROTOBUF = "application/x-protobuf"

AttributeValue: TypeAlias = (
    "str | bool | int | float | bytes | tuple[AttributeValue, ...] | dict[str, AttributeValue] | None"
)
T = TypeVar("T")
MetricKind = Literal["histogram", "exponential_histogram", "sum", "gauge", "summary"]


@dataclass(frozen=True)
class Event:
    name: str
    attributes: dict[str, AttributeValue] = field(hash=False)
    time_unix_nano: int


@dataclass(frozen=True)
class Span:
    """One received span. Ids are lowercase hex (trace 32 digits, span 16); ``kind`` and
    ``status_code`` are the SDK's names (``"SERVER"``, ``"ERROR"``); ``scope`` is the name of the
    instrumentation scope (the tracer's name)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    attributes: dict[str, AttributeValue] = field(hash=False)
    events: tuple[Event, ...]
    status_code: str
    status_message: str
    start_unix_nano: int
    end_unix_nano: int
    resource: dict[str, AttributeValue] = field(hash=False)
    scope: str


@dataclass(frozen=True)
class MetricPoint:
    """One received data point. ``value`` is the sum of a histogram (None if it was sent without
    one) or the value of a sum or gauge; ``count`` and the buckets are a histogram's only.

    With the SDK's default cumulative temporality every export repeats every point, so the last
    point of a name and attribute set is its current total."""

    name: str
    unit: str
    kind: MetricKind
    attributes: dict[str, AttributeValue] = field(hash=False)
    value: float | None
    count: int | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()
    resource: dict[str, AttributeValue] = field(default_factory=dict, hash=False)
    scope: str = ""


class OtlpReceiver:
    """Records every span and metric point exported to it; see the module docstring for the faults.

    State is kept under one ``threading.Condition``: each export request notifies it (on arrival
    and once recorded), which is what ``wait_for`` and friends block on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._spans: list[Span] = []
        self._points: list[MetricPoint] = []
        self._exports: Counter[str] = Counter()
        self._fail_status: int | None = None
        self._gate: threading.Event | None = None  # set while hanging: exports wait on it
        self._epoch = 0  # bumped by reset() and stop(): a request held across either is dropped
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        """The value for ``OTEL_EXPORTER_OTLP_ENDPOINT``; the SDK appends ``/v1/traces`` itself."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def exports(self) -> dict[str, int]:
        """Export requests received per path (``/v1/traces``, ``/v1/metrics``), failed ones too."""
        with self._cond:
            return dict(self._exports)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Serve, on a free port the first time and on the same port after a ``stop()``."""
        with self._cond:
            if self._server is not None:
                return
            server = _Server(("127.0.0.1", self._port), self)  # listening once constructed
            self._port = int(server.server_address[1])
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-receiver", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Close the listening socket: new exports get connection refused. Exports held by
        ``hang()`` are let go, and their connections closed without an answer."""
        with self._cond:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._epoch += 1
            self._open_gate()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def reset(self) -> None:
        """Forget everything received, clear the faults, and serve again if stopped."""
        with self._cond:
            self._epoch += 1
            self._open_gate()
            self._spans.clear()
            self._points.clear()
            self._exports.clear()
            self._fail_status = None
        self.start()

    def fail_with(self, status: int | None) -> None:
        """Answer every export with ``status`` (and record nothing) until ``fail_with(None)``."""
        with self._cond:
            self._fail_status = status

    def hang(self) -> None:
        """Hold every export, unanswered, until ``release()`` (or ``reset()``, ``stop()``)."""
        with self._cond:
            if self._gate is None:
                self._gate = threading.Event()

    def release(self) -> None:
        """Let held exports go on (they are answered as usual) and stop holding new ones."""
        with self._cond:
            self._open_gate()

    def spans(self, trace_id: str | None = None) -> list[Span]:
        """Every span received so far, in order of arrival; of one trace if ``trace_id`` is given."""
        with self._cond:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of one trace, by start time; AssertionError if none was received."""
        spans = sorted(self.spans(trace_id), key=lambda s: s.start_unix_nano)
        if not spans:
            seen = sorted({s.trace_id for s in self.spans()})
            raise AssertionError(f"no span of trace {trace_id} received; traces received: {seen}")
        return spans

    def by_name(self, name: str) -> list[Span]:
        return [s for s in self.spans() if s.name == name]

    def children_of(self, span: Span) -> list[Span]:
        """The spans whose parent is ``span``, by start time."""
        children = [s for s in self.spans(span.trace_id) if s.parent_id == span.span_id]
        return sorted(children, key=lambda s: s.start_unix_nano)

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout_s: float = 10) -> list[Span]:
        """Block until ``predicate(every span received)`` holds and return those spans."""
        return self._wait(lambda: list(self._spans), predicate, timeout_s, _describe_spans)

    def metrics(self, name: str | None = None) -> list[MetricPoint]:
        """Every metric point received so far, in order of arrival; of one metric if ``name`` is given."""
        with self._cond:
            return [p for p in self._points if name is None or p.name == name]

    def wait_for_metrics(
        self, predicate: Callable[[list[MetricPoint]], bool], timeout_s: float = 10
    ) -> list[MetricPoint]:
        """Block until ``predicate(every metric point received)`` holds and return those points."""
        return self._wait(lambda: list(self._points), predicate, timeout_s, _describe_points)

    def wait_for_exports(self, count: int, path: str = TRACES, timeout_s: float = 10) -> None:
        """Block until ``count`` export requests have arrived at ``path`` (held or failed ones too)."""
        self._wait(lambda: self._exports[path], lambda n: n >= count, timeout_s, lambda n: f"{n} export(s) to {path}")

    def _wait(
        self, snapshot: Callable[[], T], predicate: Callable[[T], bool], timeout_s: float, describe: Callable[[T], str]
    ) -> T:
        seen: list[T] = []

        def ready() -> bool:
            seen[:] = [snapshot()]
            return predicate(seen[0])

        with self._cond:
            if self._cond.wait_for(ready, timeout=timeout_s):
                return seen[0]
            raise AssertionError(f"not within {timeout_s:g} s; received: {describe(seen[0])}")

    def _open_gate(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def _handle(self, request: _Handler) -> None:
        path = urlsplit(request.path).path
        body = _read_body(request)
        with self._cond:
            self._exports[path] += 1
            epoch, gate = self._epoch, self._gate
            self._cond.notify_all()
        if gate is not None:
            gate.wait()
        encoding = request.headers.get("Content-Encoding", "identity").lower()
        answer = _decode(path, request.headers.get_content_type(), encoding, body)
        with self._cond:
            if self._epoch != epoch:  # stopped or reset while held: this export belongs to no test
                request.drop()
                return
            if self._fail_status is not None:
                # An empty body is a valid (empty) google.rpc.Status, the body OTLP gives errors.
                answer = _Answer(self._fail_status, b"")
            self._spans.extend(answer.spans)
            self._points.extend(answer.points)
            self._cond.notify_all()
        request.answer(answer.status, answer.body, answer.content_type)


class _Answer(NamedTuple):
    status: int
    body: bytes
    content_type: str = PROTOBUF
    spans: Sequence[Span] = ()
    points: Sequence[MetricPoint] = ()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still held when the tests end must not keep the process alive
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # an exporter that gave up and hung up
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: none is left open across a stop()

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection without an answer, as a collector that was killed would."""
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The body as sent: by Content-Length, or chunked (the SDK sends the former, but either is HTTP)."""
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while size := int(request.rfile.readline().split(b";")[0], 16):
            body += request.rfile.read(size)
            request.rfile.readline()
        while request.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return body
    return request.rfile.read(int(request.headers.get("Content-Length") or 0))


def _decompress(encoding: str, body: bytes) -> bytes:
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"body is not valid {encoding}: {error}") from error
    if encoding != "identity":
        raise ValueError(f"unsupported Content-Encoding {encoding}")
    return body


def _decode(path: str, content_type: str, encoding: str, body: bytes) -> _Answer:
    """The answer to one export request, with what it carried, decoded."""
    if path not in (TRACES, METRICS):
        return _Answer(404, f"no OTLP signal at {path}".encode(), "text/plain")
    if content_type != PROTOBUF:
        return _Answer(415, f"expected {PROTOBUF}, not {content_type}".encode(), "text/plain")
    try:
        body = _decompress(encoding, body)
        if path == TRACES:
            spans = _spans(ExportTraceServiceRequest.FromString(body))
            return _Answer(200, ExportTraceServiceResponse().SerializeToString(), spans=spans)
        points = _points(ExportMetricsServiceRequest.FromString(body))
        return _Answer(200, ExportMetricsServiceResponse().SerializeToString(), points=points)
    except (ValueError, DecodeError) as error:
        return _Answer(400, f"not an OTLP export request: {error}".encode(), "text/plain")


def _spans(request: Any) -> list[Span]:
    return [
        Span(
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_id=span.parent_span_id.hex() or None,
            kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
            attributes=_attributes(span.attributes),
            events=tuple(Event(e.name, _attributes(e.attributes), e.time_unix_nano) for e in span.events),
            status_code=trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
            status_message=span.status.message,
            start_unix_nano=span.start_time_unix_nano,
            end_unix_nano=span.end_time_unix_nano,
            resource=_attributes(resource_spans.resource.attributes),
            scope=scope_spans.scope.name,
        )
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def _points(request: Any) -> list[MetricPoint]:
    return [
        _point(metric, point, _attributes(resource_metrics.resource.attributes), scope_metrics.scope.name)
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        for point in getattr(metric, metric.WhichOneof("data")).data_points
    ]


def _point(metric: Any, point: Any, resource: dict[str, AttributeValue], scope: str) -> MetricPoint:
    kind: MetricKind = metric.WhichOneof("data")
    attributes = _attributes(point.attributes)
    if kind in ("sum", "gauge"):
        value = getattr(point, point.WhichOneof("value"))
        return MetricPoint(metric.name, metric.unit, kind, attributes, value, resource=resource, scope=scope)
    total = point.sum if kind == "summary" or point.HasField("sum") else None
    histogram = kind == "histogram"
    return MetricPoint(
        metric.name,
        metric.unit,
        kind,
        attributes,
        total,
        count=point.count,
        bucket_counts=tuple(point.bucket_counts) if histogram else (),
        explicit_bounds=tuple(point.explicit_bounds) if histogram else (),
        resource=resource,
        scope=scope,
    )


def _attributes(pairs: Sequence[Any]) -> dict[str, AttributeValue]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> AttributeValue:
    """An OTLP ``AnyValue`` as Python: arrays as tuples, key-value lists as dicts, unset as None."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    attribute: AttributeValue = getattr(value, which)
    return attribute


def _describe_spans(spans: list[Span]) -> str:
    if not spans:
        return "no spans"
    lines = [
        f"{s.name!r} {s.kind} trace={s.trace_id} span={s.span_id} parent={s.parent_id} {s.status_code}"
        for s in spans[-50:]
    ]
    return f"{len(spans)} span(s), the last {len(lines)}:\n  " + "\n  ".join(lines)


def _describe_points(points: list[MetricPoint]) -> str:
    if not points:
        return "no metric points"
    lines = [f"{p.name!r} {p.kind} {p.attributes} value={p.value} count={p.count}" for p in points[-50:]]
    return f"{len(points)} point(s), the last {len(lines)}:\n  " + "\n  ".join(lines)


@contextmanager
def running_otlp_receiver() -> Iterator[OtlpReceiver]:
    """A receiver serving on a free port for the block; ``.endpoint`` is its base URL."""
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
