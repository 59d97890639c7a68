"""``Telemetry``: this process's OpenTelemetry tracer and meter, built from the standard ``OTEL_*``
variables, or nothing at all.

Off unless switched on: with no ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its ``_TRACES_`` or
``_METRICS_`` form) and no ``OTEL_TRACES_EXPORTER=console``, ``Telemetry.from_environment``
returns None and no provider, exporter or thread exists (``OTEL_SDK_DISABLED=true`` forces it
off). Everything else is the SDK's own reading of the variables: ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and its argument, ``OTEL_PROPAGATORS``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``_TIMEOUT``, ``_COMPRESSION``, ``OTEL_BSP_*``,
``OTEL_METRIC_EXPORT_INTERVAL``. Export is OTLP over HTTP (``http/protobuf``, port 4318 on a
collector): the gRPC exporter would add grpcio to every install.

The providers are this app's, never the global ones: two apps in one process (tests) keep apart.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Tracer

from errors import ConfigurationError
from errors.secrets import withhold
from tracing.span_export import CountedBatchExport

logger = logging.getLogger("llm_server.tracing")

DEFAULT_SERVICE_NAME = "llm-fallback-server"
SCOPE = "llm_server"  # the instrumentation scope of our own spans and metrics
# The conventions' switch for prompt and answer text on spans (off: never captured).
CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = {"true", "1", "span_only", "span_and_event"}
SHUTDOWN_S = 5.0  # the longest a stop waits for the last spans to reach a collector


@dataclass
class Telemetry:
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    export: CountedBatchExport | None  # the spans' way out, and what it dropped
    capture_content: bool

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        service_version: str = "",
        on_drop: Callable[[int, str], None] = lambda count, reason: None,
    ) -> Telemetry | None:
        """Tracing and metrics as ``environ`` (``os.environ``) asks; None when neither is on.
        ``on_drop(count, reason)``: spans lost (queue full, or a collector that refused or
        never answered). A variable this server cannot honour raises ``ConfigurationError``."""
        env = os.environ if environ is None else environ
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        _withhold_headers(env)
        spans = _span_exporter(env)
        metrics = _metric_exporter(env)
        if spans is None and metrics is None:
            return None
        resource = _resource(service_version)
        export = None
        tracer_provider = None
        if spans is not None:
            try:
                export = CountedBatchExport(spans, on_drop=on_drop)
            except ValueError as exc:  # the OTEL_BSP_* sizes do not fit together
                raise ConfigurationError(f"OpenTelemetry's span export cannot start: {exc} (OTEL_BSP_*)") from None
            tracer_provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
            tracer_provider.add_span_processor(export)
        meter_provider = None
        if metrics is not None:
            meter_provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(metrics)])
        capture = env.get(CAPTURE_CONTENT, "").strip().lower() in _CONTENT_ON
        where = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "console"
        where = urlsplit(where)._replace(netloc=urlsplit(where).netloc.rpartition("@")[2]).geturl()  # no credentials
        logger.info(
            "OpenTelemetry on: traces %s, metrics %s, to %s as %s; message content %s",
            "on" if spans else "off",
            "on" if metrics else "off",
            where,
            resource.attributes.get(SERVICE_NAME),
            "captured" if capture else "not captured",
        )
        return cls(tracer_provider, meter_provider, export, capture)

    def tracer(self) -> Tracer | None:
        if self.tracer_provider is None:
            return None
        return self.tracer_provider.get_tracer(SCOPE)

    def shutdown(self, timeout_s: float = SHUTDOWN_S) -> bool:
        """Export what is queued and stop, waiting at most ``timeout_s``: a collector that is down
        must not hold the server's exit (the exporter retries until its own timeout). False: gave up."""
        done = threading.Event()

        def stop() -> None:
            try:
                if self.tracer_provider is not None:
                    self.tracer_provider.shutdown()
                if self.meter_provider is not None:
                    self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)
            except Exception:  # a failed last export is the collector's, not a reason to fail the stop
                logger.exception("OpenTelemetry shutdown failed")
            finally:
                done.set()

        threading.Thread(target=stop, name="otel-shutdown", daemon=True).start()
        finished = done.wait(timeout_s)
        if not finished:
            logger.warning("OpenTelemetry: the collector did not take the last spans within %g s; dropped", timeout_s)
        return finished


def _withhold_headers(env: Mapping[str, str]) -> None:
    """The collector's headers are credentials (``authorization=Bearer ...``): never logged."""
    for variable in (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    ):
        for pair in env.get(variable, "").split(","):
            value = pair.partition("=")[2].strip()
            if value:
                withhold(unquote(value), value)


def _exporter_kind(env: Mapping[str, str], signal: str) -> str:
    kind = env.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower()
    if kind not in ("otlp", "console", "none"):
        raise ConfigurationError(
            f"OTEL_{signal.upper()}_EXPORTER={kind}: this server exports {signal} with otlp (or console, or none)"
        )
    return kind


def _protocol_ok(env: Mapping[str, str], signal: str) -> None:
    variable = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    protocol = (env.get(variable) or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if protocol != "http/protobuf":
        raise ConfigurationError(
            f"OTLP protocol {protocol!r} ({variable} or OTEL_EXPORTER_OTLP_PROTOCOL): this server exports "
            "http/protobuf; point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP port (4318 by default)"
        )


def _otlp_wanted(env: Mapping[str, str], signal: str) -> bool:
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"))


def _span_exporter(env: Mapping[str, str]) -> SpanExporter | None:
    kind = _exporter_kind(env, "traces")
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "none" or not _otlp_wanted(env, "traces"):
        return None
    _protocol_ok(env, "traces")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # only when on

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: the OTEL_EXPORTER_OTLP_* variables


def _metric_exporter(env: Mapping[str, str]) -> MetricExporter | None:
    kind = _exporter_kind(env, "metrics")
    if kind == "console":
        return ConsoleMetricExporter()
    if kind != "otlp" or not _otlp_wanted(env, "metrics"):
        return None
    _protocol_ok(env, "metrics")
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def _resource(service_version: str) -> Resource:
    """The SDK's resource from the environment, with our service name, version and instance where
    the environment gives none."""
    resource = Resource.create()
    ours = {
        SERVICE_NAME: DEFAULT_SERVICE_NAME,
        SERVICE_VERSION: service_version,
        SERVICE_INSTANCE_ID: f"{socket.gethostname()}:{os.getpid()}",  # one per worker
    }
    given = resource.attributes
    missing = {
        key: value
        for key, value in ours.items()
        if value and (key not in given or (key == SERVICE_NAME and str(given[key]).startswith("unknown_service")))
    }
    return resource.merge(Resource(missing))
