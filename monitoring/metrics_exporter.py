"""``MetricsExporter``: Prometheus metrics from call records and HTTP requests (prometheus-client).

Each app owns its own ``CollectorRegistry`` so several apps (tests, embedded hosts) never share
counters. Label values are bounded: models, routes and causes come from settings and code, not
from clients. With several workers (``PROMETHEUS_MULTIPROC_DIR`` set by ``server.py``) every
process writes its values to that folder and ``render`` adds them all up, so a scrape through any
worker sees the whole server; gauges then report the largest value among live workers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from monitoring.alert_dispatcher import DeliveryResult
from monitoring.call_store import WriteReport
from vocabulary import Outcome
from vocabulary.records import CallRecord
from vocabulary.run_metadata import BAD_CHUNKS, DOOR, LANGSERVE_DOOR

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)


class MetricsExporter:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram(
            "http_request_duration_seconds", "Time to the end of the response", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.llm_calls = Counter(
            "llm_calls", "LLM attempts by outcome and front door", ["model", "provider", "outcome", "door"], registry=r
        )
        self.llm_errors = Counter("llm_errors", "Failed LLM attempts by cause", ["model", "cause"], registry=r)
        self.llm_seconds = Histogram(
            "llm_call_duration_seconds", "Duration of answered LLM calls", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_token_seconds = Histogram(
            "llm_first_token_seconds", "Time to the first token of answered LLM calls", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter("llm_tokens", "Tokens by kind", ["model", "kind"], registry=r)
        # Streams with more than the server skips fail: llm_errors with cause malformed_stream.
        self.bad_chunks = Counter(
            "llm_stream_bad_chunks", "Stream chunks skipped as not JSON, on answered calls", ["model"], registry=r
        )
        self.cost = Counter("llm_cost_usd", "Spend in USD (priced models only)", ["model"], registry=r)
        self.unpriced = Counter("llm_unpriced_calls", "Answered calls of models with no price", ["model"], registry=r)
        self.fallbacks = Counter(
            "llm_fallback_answers", "Answers that came from a fallback rung", ["ladder", "model"], registry=r
        )
        self.alerts_firing = Gauge(
            "alerts_firing", "Alert subjects firing now, by rule", ["rule"], registry=r, multiprocess_mode="livemax"
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["endpoint"],
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.breaker_changes = Counter(
            "circuit_breaker_transitions", "Circuit breaker state changes", ["endpoint", "to"], registry=r
        )
        self.records_waiting = Gauge(
            "monitoring_records_waiting", "Monitoring records not yet written to the SQLite file, by kind", ["kind"],
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.write_failures = Counter(
            "monitoring_write_failures", "Failed writes to the monitoring SQLite file, by error", ["error"], registry=r
        )
        self.records_dropped = Counter(
            "monitoring_records_dropped", "Monitoring records dropped: too many waited to be written", ["kind"],
            registry=r,
        )  # fmt: skip
        self.alert_deliveries = Counter(
            "alert_deliveries", "Alert deliveries by destination and outcome (delivered, failed, dropped, elsewhere)",
            ["sink", "outcome"], registry=r,
        )  # fmt: skip
        # Budgets: the shared totals as this process last read them (every replica reads the same with Redis).
        budget = ["budget", "subject"]
        self.budget_spent = Gauge(
            "llm_budget_spent_usd", "Spent in the budget's current window", budget, registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.budget_remaining = Gauge(
            "llm_budget_remaining_usd", "Left of the budget's limit in its current window",
            budget, registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self.budget_limit = Gauge(
            "llm_budget_limit_usd", "The budget's limit per window", budget, registry=r, multiprocess_mode="livemax"
        )
        self.cache_lookups = Counter(
            "llm_cache_lookups", "Response cache lookups by result (hit, miss, bypass)", ["result", "route"], registry=r
        )
        self.cache_saved = Counter(
            "llm_cache_saved_usd", "What answering from the response cache saved, at the cached answer's cost",
            ["route"], registry=r,
        )  # fmt: skip
        self.overhead_seconds = Histogram(
            "llm_server_overhead_seconds",
            "The server's own time per request: its whole time less its waits for model providers "
            "(also each response's X-Server-Overhead-Ms)",
            ["route"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )
        self.spans_dropped = Counter(
            "llm_trace_spans_dropped",
            "Trace spans lost on their way to the OTLP collector: queue_full (a collector slower than the traffic) "
            "or export_failed (it refused them or did not answer)",
            ["reason"],
            registry=r,
        )

    def observe(self, record: CallRecord) -> None:
        if record.outcome == Outcome.CACHED:
            return  # no model call: the cache's own counters (observe_cache) count it
        model = record.model
        door = str(record.metadata.get(DOOR, LANGSERVE_DOOR))
        self.llm_calls.labels(model, record.provider, record.outcome, door).inc()
        if record.outcome == Outcome.ERROR:
            self.llm_errors.labels(model, record.cause or "unknown").inc()
        if record.outcome == Outcome.OK:
            self.llm_seconds.labels(model).observe(record.duration_s)
            if record.first_token_s is not None:
                self.first_token_seconds.labels(model).observe(record.first_token_s)
            if record.cost_usd is None:
                self.unpriced.labels(model).inc()
            if record.ladder is not None and (record.rung or 0) > 0:
                self.fallbacks.labels(record.ladder, model).inc()
            bad_chunks = record.metadata.get(BAD_CHUNKS)
            if bad_chunks:
                self.bad_chunks.labels(model).inc(int(bad_chunks))
        for kind, count in (
            ("input", record.input_tokens),
            ("output", record.output_tokens),
            ("cached_input", record.cached_input_tokens),
            ("reasoning", record.reasoning_tokens),
        ):
            if count:
                self.tokens.labels(model, kind).inc(count)
        if record.cost_usd:
            self.cost.labels(model).inc(float(record.cost_usd))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # A label per method token the client invents would grow memory and /metrics for good.
        known = method if method in HTTP_METHODS else "other"
        self.requests.labels(route, known, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)

    def observe_breaker(self, endpoint: str, state: str) -> None:
        self.breaker_state.labels(endpoint).set(_BREAKER_LEVELS[state])
        self.breaker_changes.labels(endpoint, state).inc()

    def observe_storage(self, report: WriteReport) -> None:
        for kind, count in report.waiting.items():
            self.records_waiting.labels(kind).set(count)
        if report.error_kind is not None:
            self.write_failures.labels(report.error_kind).inc()
        for kind, count in report.dropped.items():
            self.records_dropped.labels(kind).inc(count)

    def observe_delivery(self, result: DeliveryResult) -> None:
        if result.attempts:
            outcome = "delivered" if result.ok else "failed"
        else:
            outcome = "elsewhere" if result.ok else "dropped"
        self.alert_deliveries.labels(result.sink, outcome).inc()

    def observe_budget(
        self, budget: str, subject: str, spent_usd: float, remaining_usd: float, limit_usd: float
    ) -> None:
        self.budget_spent.labels(budget, subject).set(spent_usd)
        self.budget_remaining.labels(budget, subject).set(remaining_usd)
        self.budget_limit.labels(budget, subject).set(limit_usd)

    def observe_cache(self, result: str, route: str, saved_usd: float = 0.0) -> None:
        self.cache_lookups.labels(result, route).inc()
        if saved_usd:
            self.cache_saved.labels(route).inc(saved_usd)

    def observe_overhead(self, route: str, seconds: float) -> None:
        self.overhead_seconds.labels(route).observe(seconds)

    def observe_dropped_spans(self, count: int, reason: str) -> None:
        self.spans_dropped.labels(reason).inc(count)

    def set_firing(self, counts: Mapping[str, int]) -> None:
        for rule, count in counts.items():
            self.alerts_firing.labels(rule).set(count)

    def render(self) -> bytes:
        if os.environ.get(MULTIPROCESS_DIR):
            every_worker = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_worker)
            return generate_latest(every_worker)
        return generate_latest(self.registry)
