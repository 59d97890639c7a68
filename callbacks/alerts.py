"""``AlertCallback``: the seed's alerts (long prompt, slow response, cumulative cost, LLM error),
sent to pluggable ``AlertSink``s.

State: start times of calls in flight, keyed by run id (so concurrent calls never share one),
and the cumulative spend with a flag so the cost alert fires once per crossing instead of on
every call after it. Handlers are async; sinks must not block (the log sink only logs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from callbacks.pricing import PriceTable
from callbacks.usage import model_of, usage_of
from errors import Cause, classify, describe

logger = logging.getLogger("llm_server.alerts")


@dataclass(frozen=True)
class Alert:
    rule: str  # long_prompt, slow_response, cost_threshold, llm_error
    severity: str  # warning or critical
    message: str
    at: datetime
    model: str | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "at": self.at.isoformat(),
            "model": self.model,
            "run_id": self.run_id,
        }


class AlertSink(Protocol):
    def send(self, alert: Alert) -> None: ...


class LogSink:
    def send(self, alert: Alert) -> None:
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        logger.log(level, "[ALERT] %s: %s", alert.rule, alert.message)


class AlertHistory:
    """The most recent alerts, newest last, for ``/monitoring/alerts``."""

    def __init__(self, max_alerts: int = 1000):
        self._alerts: deque[Alert] = deque(maxlen=max_alerts)
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        with self._lock:
            self._alerts.append(alert)

    def recent(self, limit: int = 100) -> list[Alert]:
        with self._lock:
            return list(self._alerts)[-limit:][::-1]


@dataclass(frozen=True)
class AlertThresholds:
    long_prompt_chars: int = 3000
    slow_response_s: float = 10.0
    cost_usd: Decimal = Decimal("1.00")


class AlertCallback(AsyncCallbackHandler):
    def __init__(
        self,
        sinks: Sequence[AlertSink],
        prices: PriceTable,
        thresholds: AlertThresholds,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.sinks = list(sinks)
        self.prices = prices
        self.thresholds = thresholds
        self._clock = clock
        self._wall_clock = wall_clock
        self._started: dict[UUID, tuple[float, str]] = {}
        self.cumulative_cost = Decimal(0)
        self._cost_alerted = False

    def _send(self, rule: str, message: str, *, model: str | None, run_id: UUID, severity: str = "warning") -> None:
        alert = Alert(rule, severity, message, self._wall_clock(), model, str(run_id))
        for sink in self.sinks:
            try:
                sink.send(alert)
            except Exception:  # an alert sink must never fail a user's request
                logger.exception("alert sink %r failed", sink)

    def _begin(self, prompt_chars: int, run_id: UUID, metadata: dict[str, Any] | None) -> None:
        model = str((metadata or {}).get("ls_model_name") or "unknown")
        self._started[run_id] = (self._clock(), model)
        if prompt_chars > self.thresholds.long_prompt_chars:
            self._send("long_prompt", f"long prompt: {prompt_chars} characters to {model}", model=model, run_id=run_id)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._begin(sum(len(m.text) for batch in messages for m in batch), run_id, metadata)

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._begin(sum(len(p) for p in prompts), run_id, metadata)

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._started.pop(run_id, None)
        if started is None:
            return
        start, model = started
        duration = self._clock() - start
        if duration > self.thresholds.slow_response_s:
            self._send("slow_response", f"slow response: {duration:.2f}s from {model}", model=model, run_id=run_id)
        cost = self.prices.cost(model_of(response) or model, usage_of(response))
        if cost is None:
            return
        self.cumulative_cost += cost
        if not self._cost_alerted and self.cumulative_cost > self.thresholds.cost_usd:
            self._cost_alerted = True
            self._send(
                "cost_threshold",
                f"cumulative cost ${self.cumulative_cost:.4f} passed ${self.thresholds.cost_usd}",
                model=model,
                run_id=run_id,
                severity="critical",
            )

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._started.pop(run_id, None)
        model = started[1] if started else None
        cause = classify(error)
        if cause in (Cause.NOT_CONFIGURED, Cause.CANCELLED):
            return  # a provider without a key, or a client that left: known states, not incidents
        self._send("llm_error", f"{model} failed ({cause.value}): {describe(error)}", model=model, run_id=run_id)

    def reset_cost_tracking(self) -> None:
        self.cumulative_cost = Decimal(0)
        self._cost_alerted = False
