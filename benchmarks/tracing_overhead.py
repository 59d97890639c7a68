"""Server CPU per request with OpenTelemetry tracing off and on: ``/chat/invoke`` and
``/chat/stream`` (LangServe, through httpx) and ``/v1/chat/completions`` (the OpenAI-compatible
door, through the official ``openai`` SDK), the same questions to the same model (``openai``),
against the instant provider double.

Processes of their own: the provider double, an OTLP/HTTP collector, and three servers
(``python server.py``) with the same settings but for ``OTEL_EXPORTER_OTLP_ENDPOINT``:

- ``off``: unset, so no provider, exporter or instrumentation exists;
- ``on``: the collector, which decodes each export with ``opentelemetry-proto``, counts the spans
  and answers 200 (keeping its connections alive, as a collector does);
- ``down``: a local port nobody listens on (a collector that is down): every request must still
  succeed, and the server counts the spans it lost in ``llm_trace_spans_dropped_total``.

The export schedule is the SDK's default, as in production: no ``OTEL_BSP_*`` or
``OTEL_METRIC_*`` variable is set (spans go out in batches of 512 or every 5 s, metrics every
60 s), and any ``OTEL_*`` variable of the shell is removed first. Spans leave on a background
thread after the requests, so after each round the benchmark waits out one schedule delay
(``SETTLE_S``) before reading the server's CPU, for every server alike: the export of a round's
spans counts in that round. Metrics exports (once a minute) land in whichever round they fall
into; the "whole run" line counts everything, idle time and every export included.

CPU is read from ``/proc`` for the server processes only: neither the clients', the double's nor
the collector's counts. Rounds alternate kinds and servers (their order rotated each round), so
a noisy machine weighs on all of them alike; the figure per kind and server is the median of its
rounds. "spans/req" is what the collector received per request of the ``on`` server: 3 (the
server span, the ladder's, the model call's) when every span was exported.

    .venv/bin/python benchmarks/tracing_overhead.py [--rounds 6] [--requests 200] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.door_cpu import kinds as door_kinds
from benchmarks.load import cpu_seconds, double_process, server_settings
from tests.helpers.processes import eventually, free_port, server_process

VARIANTS = ("off", "on", "down")
SETTLE_S = 6.0  # the SDK's default OTEL_BSP_SCHEDULE_DELAY (5 s) and a second for the export itself
GIVE_UP_S = 12.0  # the exporter's default OTEL_EXPORTER_OTLP_TIMEOUT (10 s): its retries of a batch are over
Request = Callable[[int], Awaitable[None]]


# -- the collector, in a process of its own --------------------------------------------------------
def collect(port: int) -> None:
    """An OTLP/HTTP collector on ``port`` that counts what it receives; ``GET /counts`` says how much."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    lock = threading.Lock()
    counts = {"spans": 0, "trace_exports": 0, "metric_exports": 0}
    answers = {
        "/v1/traces": ExportTraceServiceResponse().SerializeToString(),
        "/v1/metrics": ExportMetricsServiceResponse().SerializeToString(),
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real collector: the exporter reuses its connection

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
                with lock:
                    counts["spans"] += spans
                    counts["trace_exports"] += 1
            elif self.path == "/v1/metrics":
                with lock:
                    counts["metric_exports"] += 1
            self.answer(answers.get(self.path, b""), "application/x-protobuf")

        def do_GET(self) -> None:
            with lock:
                self.answer(json.dumps(counts).encode(), "application/json")

        def answer(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@contextmanager
def collector_process() -> Iterator[str]:
    """The collector running; yields its URL (the value for ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=collect, args=(port,), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/counts", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(answers, "the collector answers")
        yield url
    finally:
        process.terminate()
        process.join(timeout=10)


def received(collector: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{collector}/counts", timeout=10).json()
    return counts


# -- the clients -----------------------------------------------------------------------------------
KINDS = ("/chat/invoke", "/chat/stream", "/v1/chat/completions")


def kinds(http: httpx.AsyncClient, sdk: openai.AsyncOpenAI) -> dict[str, Request]:
    """door_cpu's requests, as users send them: httpx for LangServe, the ``openai`` SDK for the door."""
    every = door_kinds(http, sdk)
    return {name: every[name] for name in KINDS}


@dataclass
class Server:
    """One server under measurement, with its clients and what it has served."""

    name: str
    url: str
    pid: int
    requests: dict[str, Request]
    served: int = 0  # requests answered with success (any failure ends the run)
    ms: dict[str, list[float]] = field(default_factory=dict)  # server CPU ms per request, per kind and round
    spans: dict[str, list[int]] = field(default_factory=dict)  # spans the collector received, per kind and round


async def one_round(
    server: Server, kind: str, requests: int, clients: int, start: int, settle_s: float = SETTLE_S
) -> float:
    """Server CPU milliseconds per request for ``requests`` requests from ``clients`` at once, with
    the round's deferred work (its spans' export) let run for ``settle_s`` before the CPU is read."""
    queue = iter(range(start, start + requests))
    request = server.requests[kind]

    async def client() -> int:
        done = 0
        for n in queue:
            await request(n)
            done += 1
        return done

    before = cpu_seconds(server.pid)
    server.served += sum(await asyncio.gather(*(client() for _ in range(clients))))
    await asyncio.sleep(settle_s)
    after = cpu_seconds(server.pid)
    assert before is not None and after is not None
    return (after - before) / requests * 1000


def dropped_spans(url: str) -> dict[str, float]:
    """``llm_trace_spans_dropped_total`` by reason, from the server's ``/metrics``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        sample.labels.get("reason", ""): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "llm_trace_spans_dropped"
        for sample in family.samples
        if sample.name == "llm_trace_spans_dropped_total"
    }


def check_trace_header(url: str, traced: bool) -> None:
    """The traced servers answer with ``X-Trace-Id`` and the untraced one without: tracing is on
    exactly where it should be."""
    body = {"input": {"question": "Is tracing on?"}, "config": {"configurable": {"llm_model": "openai"}}}
    response = httpx.post(f"{url}/chat/invoke", json=body, timeout=60)
    response.raise_for_status()
    trace_id = response.headers.get("x-trace-id")
    assert (trace_id is not None) == traced, f"{url}: X-Trace-Id {trace_id!r}, tracing expected {traced}"


@dataclass
class Figures:
    servers: dict[str, Server]
    idle_ms_per_s: dict[str, float]  # CPU while idle, ms per second
    whole_run_ms: dict[str, float]  # every CPU second of the measured rounds per request
    dropped: dict[str, dict[str, float]]
    collector: dict[str, int]
    requests_on: int  # every request the traced server got, warm-up and checks included


async def measure(args: argparse.Namespace) -> Figures:
    for variable in [v for v in os.environ if v.startswith("OTEL_")]:  # the SDK's defaults, whatever the shell says
        del os.environ[variable]
    folder = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    with ExitStack() as stack:
        double_url, _ = stack.enter_context(double_process(seed=1, rate=0.0, delay_s=0.0))
        collector = stack.enter_context(collector_process())
        endpoints = {"off": None, "on": collector, "down": f"http://127.0.0.1:{free_port()}"}  # nobody listens
        urls: dict[str, str] = {}
        for name in VARIANTS:
            settings, endpoint = server_settings(double_url), endpoints[name]
            if endpoint is not None:
                settings["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
            urls[name] = stack.enter_context(server_process(folder / name, settings))
            check_trace_header(urls[name], traced=endpoint is not None)
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        servers: dict[str, Server] = {}
        clients: list[httpx.AsyncClient] = []
        for name, url in urls.items():
            pid = httpx.get(f"{url}/health", timeout=10).json()["process"]
            http = httpx.AsyncClient(base_url=url, timeout=60, limits=limits)
            sdk_http = httpx.AsyncClient(timeout=60, limits=limits)
            sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="open", http_client=sdk_http, max_retries=0)
            clients += [http, sdk_http]
            servers[name] = Server(name, url, pid, kinds(http, sdk))
        try:
            names = list(servers["off"].requests)
            for server in servers.values():  # warm up: connections, caches, the first build
                for kind in names:
                    await one_round(server, kind, args.clients * 2, args.clients, 0, settle_s=0)
                    server.ms[kind], server.spans[kind] = [], []
            await asyncio.sleep(SETTLE_S)  # the warm-up's spans exported

            idle_before = {name: cpu_seconds(s.pid) or 0.0 for name, s in servers.items()}
            await asyncio.sleep(SETTLE_S)
            idle_ms_per_s = {
                name: ((cpu_seconds(s.pid) or 0.0) - idle_before[name]) / SETTLE_S * 1000 for name, s in servers.items()
            }

            run_before = {name: cpu_seconds(s.pid) or 0.0 for name, s in servers.items()}
            order = list(VARIANTS)
            n = 1000
            for _ in range(args.rounds):
                for kind in names:
                    for name in order:
                        server = servers[name]
                        spans_before = received(collector)["spans"]
                        server.ms[kind].append(await one_round(server, kind, args.requests, args.clients, n))
                        server.spans[kind].append(received(collector)["spans"] - spans_before)
                    n += args.requests
                order = order[1:] + order[:1]  # who goes first rotates
            # The last metrics export (60 s apart) is not waited for: it would count a minute's idling.
            measured = args.rounds * len(names) * args.requests
            whole_run_ms = {
                name: ((cpu_seconds(s.pid) or 0.0) - run_before[name]) / measured * 1000 for name, s in servers.items()
            }
            await asyncio.sleep(GIVE_UP_S)  # the down server's last batch given up on, and counted
            dropped = {name: dropped_spans(s.url) for name, s in servers.items()}
            requests_on = servers["on"].served + 1  # and the X-Trace-Id check
            for name, server in servers.items():
                assert server.served == measured + len(names) * args.clients * 2, f"{name}: {server.served} served"
        finally:
            for client in clients:
                await client.aclose()
        return Figures(servers, idle_ms_per_s, whole_run_ms, dropped, received(collector), requests_on)


def report(figures: Figures, args: argparse.Namespace) -> None:
    off, on, down = (figures.servers[name] for name in VARIANTS)
    print(
        f"server CPU ms per request, median of {args.rounds} rounds of {args.requests} "
        f"({args.clients} connections); tracing off, on (collector up), on (collector down)\n"
    )
    print("| route | off | on | on/off | spans/req (on) | collector down | down/off |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in off.ms:
        m_off, m_on, m_down = (statistics.median(s.ms[kind]) for s in (off, on, down))
        spans = sum(on.spans[kind]) / (len(on.spans[kind]) * args.requests)
        print(f"| `{kind}` | {m_off:.2f} | {m_on:.2f} | {m_on / m_off:.2f} | {spans:.2f} | {m_down:.2f} | "
              f"{m_down / m_off:.2f} |")  # fmt: skip
    whole = figures.whole_run_ms
    print(
        f"| whole run, every kind | {whole['off']:.2f} | {whole['on']:.2f} | {whole['on'] / whole['off']:.2f} | | "
        f"{whole['down']:.2f} | {whole['down'] / whole['off']:.2f} |"
    )
    print()
    for name in VARIANTS:
        rounds = "; ".join(f"{kind} " + " ".join(f"{v:.2f}" for v in figures.servers[name].ms[kind]) for kind in off.ms)
        print(f"rounds {name}: {rounds}")
    for name in ("on", "down"):  # a round and its neighbour off round ran under the same machine load
        pairs = [
            f"{kind} "
            + " ".join(f"{v / o:.2f}" for v, o in zip(figures.servers[name].ms[kind], off.ms[kind], strict=True))
            for kind in off.ms
        ]
        print(f"{name}/off round by round: {'; '.join(pairs)}")
    idle = ", ".join(f"{name} {value:.1f}" for name, value in figures.idle_ms_per_s.items())
    print(f"idle server CPU, ms per s (a round waits {SETTLE_S:g} s after its requests): {idle}")
    c = figures.collector
    print(
        f"collector: {c['spans']} spans in {c['trace_exports']} exports for {figures.requests_on} requests "
        f"({c['spans'] / figures.requests_on:.2f} per request), {c['metric_exports']} metrics exports"
    )
    for name in VARIANTS:
        dropped = figures.dropped[name]
        detail = ", ".join(f"{reason} {value:.0f}" for reason, value in sorted(dropped.items())) or "none"
        served = figures.servers[name].served + 1  # and the X-Trace-Id check
        print(f"{name}: {served} requests, every one succeeded; spans dropped (llm_trace_spans_dropped_total): "
              f"{detail}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    args = parser.parse_args(argv)
    report(asyncio.run(measure(args)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
