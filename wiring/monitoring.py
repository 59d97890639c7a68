"""``Monitoring``: everything that watches LLM calls, built once per app from settings.

CallRecorder (callback) -> CallRecord -> CallStore (SQLite)
                                            -> AlertEngine -> CallStore, AlertDispatcher -> sinks
                                            -> MetricsExporter (/metrics)
                                            -> SlowCallLog (JSON Lines)
KeywordFilter (callback) -> log, metrics; in block mode it fails the call
BreakerBoard (resilience) -> AlertEngine (circuit_breaker alerts), MetricsExporter
CallRecord -> LatencyBoard (resilience, for the fastest-first ladder order)
CallStore WriteReport -> AlertEngine (storage alerts), MetricsExporter
AlertDispatcher DeliveryResult -> CallStore, AlertEngine (alert_delivery alerts), MetricsExporter
Telemetry (OTEL_* variables; None when off) -> CallRecorder's spans, the ladders' spans,
                                               GenAIMetrics (from call records); dropped spans -> MetricsExporter
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version

import httpx
from langchain_core.callbacks import BaseCallbackHandler
from prometheus_client import Counter

from callbacks.call_recorder import CallRecorder
from callbacks.keyword_filter import KeywordFilter
from callbacks.slow_log import SlowCallLog
from monitoring import alert_rules
from monitoring.alert import Alert, AlertSink
from monitoring.alert_dispatcher import AlertDispatcher, DeliveryResult
from monitoring.alert_engine import AlertEngine
from monitoring.alert_rules import Signal, delivery_signal, storage_signals
from monitoring.alert_sinks import DiscordSink, EmailSink, LogSink, SlackSink, WebhookSink
from monitoring.call_store import CallStore, WriteReport
from monitoring.metrics_exporter import MetricsExporter
from monitoring.pricing import PriceTable
from monitoring.spend import MemorySpendLedger, SpendLedger, SpendWatch
from resilience.breaker import BreakerChange, BreakerState
from resilience.key_rotation import KeyChange
from resilience.ladder_policies import LadderPolicies
from settings import Settings
from tracing.call_spans import CallSpans
from tracing.genai_metrics import GenAIMetrics
from tracing.ladder_spans import LadderTracer
from tracing.telemetry import SCOPE, Telemetry
from vocabulary.records import CallRecord


class Monitoring:
    def __init__(
        self,
        settings: Settings,
        *,
        spend: SpendLedger | None = None,
        claim: Callable[[Alert], Awaitable[bool]] | None = None,
    ):
        """``spend`` and ``claim`` come from the shared state when replicas share it (Redis)."""
        self.prices = PriceTable.from_file(settings.price_table_path)
        self.store = CallStore(
            settings.monitoring_db_path,
            flush_interval_s=settings.monitoring_flush_interval_s,
            retention_days=settings.monitoring_retention_days,
            max_pending=settings.monitoring_max_pending,
        )
        self.metrics = MetricsExporter()
        self.http, sinks = _sinks(settings)
        self.dispatcher = AlertDispatcher(
            sinks,
            attempts=settings.alert_delivery_attempts,
            attempt_timeout_s=settings.alert_delivery_timeout_s,
            on_delivery=self._delivered,
            claim=claim,
        )
        # The error-rate rule counts calls in flight, which the performance monitor (built below) knows.
        rules = _rules(settings, in_flight=lambda model: self.performance.in_flight(model))
        self.engine = AlertEngine(rules, self._alert, cooldown_s=settings.alert_cooldown_s)
        self.store.listeners.append(self._stored)
        self.spend = SpendWatch(spend or MemorySpendLedger(), settings.alert_cost_threshold_usd, self.engine.signal)
        # Read from the OTEL_* variables (python-dotenv put a .env file's there); None: tracing is off.
        self.telemetry = Telemetry.from_environment(
            service_version=_our_version(), on_drop=self.metrics.observe_dropped_spans
        )
        telemetry = self.telemetry
        tracer = telemetry.tracer() if telemetry is not None else None
        spans = None
        self.ladder_tracer: LadderTracer | None = None
        if telemetry is not None and tracer is not None:
            spans = CallSpans(tracer, capture_content=telemetry.capture_content)
            self.ladder_tracer = LadderTracer(tracer)
        self.performance = CallRecorder([self._record, self.spend], self.prices, spans=spans)
        if telemetry is not None and telemetry.meter_provider is not None:
            self.performance.listeners.append(GenAIMetrics(telemetry.meter_provider.get_meter(SCOPE)).observe)
        self.keyword_filter = _keyword_filter(settings, self.metrics)
        self.slow_log = (
            SlowCallLog(settings.slow_log_path, settings.slow_log_threshold_s) if settings.slow_log_path else None
        )

    @property
    def handlers(self) -> list[BaseCallbackHandler]:
        """The callback handlers to attach to every served chain."""
        handlers: list[BaseCallbackHandler] = [self.performance]
        if self.keyword_filter is not None:
            handlers.append(self.keyword_filter)
        return handlers

    def watch(self, kit: LadderPolicies) -> None:
        """Alert on and export every breaker change; feed call latencies to the ladder order, and
        latencies and tokens to the balancer of deployments; trace every ladder run when tracing is on."""
        kit.traces = self.ladder_tracer
        kit.breakers.listeners.append(self._breaker_changed)
        kit.keys.listeners.append(self._key_changed)
        self.performance.listeners.append(kit.latency.observe)
        self.performance.listeners.append(kit.balancer.observe)

    def feed(self, *listeners: Callable[[CallRecord], None]) -> None:
        """Hand every call record to ``listeners`` too (routing statistics, token limits)."""
        self.performance.listeners.extend(listeners)

    def publish(self, record: CallRecord) -> None:
        """Hand a record no callback made (a response-cache hit's) to every call-record listener."""
        self.performance.publish(record)

    def shared_state_changed(self, healthy: bool, detail: str, where: str) -> None:
        """Alert while Redis is away: replicas then run on their own state (breakers, limits, spend)."""
        message = (
            f"shared state at {where} is back ({detail})"
            if healthy
            else f"shared state at {where} unreachable ({detail}): this replica runs on its own breakers, "
            "limits, spend and routing until it returns"
        )
        self.engine.signal(Signal("shared_state", "redis", not healthy, message, "critical", {"redis": where}))

    def _breaker_changed(self, change: BreakerChange) -> None:
        self.metrics.observe_breaker(change.endpoint, change.new.value)
        if change.new is BreakerState.HALF_OPEN:
            return  # still an incident until a probe succeeds
        opened = change.new is BreakerState.OPEN
        message = (
            f"circuit breaker for {change.endpoint} opened: {change.reason}; its rung is skipped"
            if opened
            else f"circuit breaker for {change.endpoint} closed: {change.reason}"
        )
        severity = "critical" if opened else "warning"
        labels = {"endpoint": change.endpoint}
        self.engine.signal(Signal("circuit_breaker", change.endpoint, opened, message, severity, labels))

    def models_file_changed(self, path: str, refused: str | None) -> None:
        """A reload of the models file: refused (the running configuration kept), or applied."""
        message = f"models file not reloaded: {refused}" if refused else f"models file {path} reloaded"
        self.engine.signal(Signal("models_file", path, refused is not None, message, "critical", {"file": path}))

    def _key_changed(self, change: KeyChange) -> None:
        subject = f"{change.endpoint}/{change.key}"
        message = (
            f"{change.endpoint} refused the key in {change.key} ({change.detail}): out of rotation, probed later"
            if change.revoked
            else f"{change.endpoint} takes the key in {change.key} again"
        )
        labels = {"endpoint": change.endpoint, "key": change.key}
        self.engine.signal(Signal("provider_key", subject, change.revoked, message, "critical", labels))

    def _record(self, record: CallRecord) -> None:
        self.store.add(record)
        self.metrics.observe(record)
        self.engine.observe(record)
        if self.slow_log is not None:
            self.slow_log.observe(record)

    def _alert(self, alert: Alert) -> None:
        self.store.add_alert(alert)
        self.metrics.set_firing(self.engine.firing_counts())
        self.dispatcher.submit(alert)

    def _stored(self, report: WriteReport) -> None:
        """Alert while the SQLite file refuses records (they wait in memory), and export the backlog."""
        self.metrics.observe_storage(report)
        for signal in storage_signals(report, str(self.store.path), self.store.max_pending):
            self.engine.signal(signal)

    def _delivered(self, result: DeliveryResult) -> None:
        self.store.add_delivery(result)
        self.metrics.observe_delivery(result)
        signal = delivery_signal(result)
        if signal is not None:
            self.engine.signal(signal)

    async def start(self) -> None:
        """Open the SQLite file now. One that cannot be written does not stop the server: it
        answers, the storage alert fires (critical, in the log too) and records wait in memory."""
        await self.store.open()

    async def close(self) -> None:
        """Deliver pending alerts, write pending records, release files and connections."""
        await self.spend.drain()
        await self.dispatcher.close()
        await self.store.close()
        if self.slow_log is not None:
            self.slow_log.close()
        if self.http is not None:
            await self.http.aclose()
        if self.telemetry is not None:  # last: the records above are done, and their spans ended
            await asyncio.to_thread(self.telemetry.shutdown)


def _our_version() -> str:
    try:
        return version("llm-fallback-server")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return ""


def _rules(settings: Settings, *, in_flight: Callable[[str], int]) -> list[alert_rules.AlertRule]:
    return [
        alert_rules.long_prompt(settings.alert_long_prompt_chars, settings.alert_long_prompt_share),
        alert_rules.slow_response(settings.alert_slow_response_s),
        alert_rules.slow_first_token(settings.alert_slow_first_token_s),
        alert_rules.LLMError(),
        alert_rules.ErrorRate(
            settings.alert_error_rate,
            settings.alert_error_rate_window_s,
            settings.alert_error_rate_min_calls,
            in_flight,
        ),
        alert_rules.FallbackUsed(),
        alert_rules.UnpricedModel(),
    ]


def _keyword_filter(settings: Settings, metrics: MetricsExporter) -> KeywordFilter | None:
    if not settings.keyword_filter_words:
        return None
    mode = settings.keyword_filter_mode
    flagged = Counter(
        "llm_flagged_answers", "Answers containing filtered words", ["model", "mode"], registry=metrics.registry
    )
    return KeywordFilter(settings.keyword_filter_words, mode, lambda model, _words: flagged.labels(model, mode).inc())


def _sinks(settings: Settings) -> tuple[httpx.AsyncClient | None, list[AlertSink]]:
    sinks: list[AlertSink] = [LogSink()]
    webhook, slack, discord = (
        settings.alert_webhook_url,
        settings.alert_slack_webhook_url,
        settings.alert_discord_webhook_url,
    )
    http = None
    if webhook or slack or discord:
        http = httpx.AsyncClient(timeout=settings.alert_delivery_timeout_s)
        if webhook:
            sinks.append(WebhookSink(webhook.get_secret_value(), http))
        if slack:
            sinks.append(SlackSink(slack.get_secret_value(), http))
        if discord:
            sinks.append(DiscordSink(discord.get_secret_value(), http))
    if settings.alert_smtp_host and settings.alert_email_to:
        password = settings.alert_smtp_password.get_secret_value() if settings.alert_smtp_password else None
        sinks.append(
            EmailSink(
                settings.alert_smtp_host,
                settings.alert_smtp_port,
                settings.alert_email_from,
                settings.alert_email_to,
                username=settings.alert_smtp_username,
                password=password,
                starttls=settings.alert_smtp_starttls,
                timeout_s=settings.alert_delivery_timeout_s,
            )
        )
    return http, sinks
