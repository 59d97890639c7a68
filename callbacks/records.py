"""``CallRecord``, one per LLM attempt, and ``CallStore``, the in-memory history behind
``/monitoring/stats`` and ``/monitoring/calls``.

The store is bounded (oldest records drop first) and guarded by a lock, because sync chain
invocations may report from worker threads while the event loop reads.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    run_id: str
    request_id: str | None
    route: str | None
    ladder: str | None
    rung: int | None
    alternative: str | None
    provider: str
    model: str
    started_at: datetime
    duration_s: float
    first_token_s: float | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: Decimal | None
    outcome: str  # "ok", "error" or "cancelled"
    cause: str | None
    error: str | None
    prompt_chars: int
    answer_chars: int
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["cost_usd"] = None if self.cost_usd is None else str(self.cost_usd)
        data["total_tokens"] = self.total_tokens
        return data


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _summary(records: list[CallRecord]) -> dict[str, Any]:
    latencies = [r.duration_s for r in records]
    costs = [r.cost_usd for r in records if r.cost_usd is not None]
    errors = sum(1 for r in records if r.outcome == "error")
    return {
        "calls": len(records),
        "errors": errors,
        "error_rate": errors / len(records) if records else 0.0,
        "latency_s": {
            "avg": statistics.fmean(latencies) if latencies else None,
            "p50": _percentile(latencies, 0.50),
            "p95": _percentile(latencies, 0.95),
        },
        "input_tokens": sum(r.input_tokens for r in records),
        "output_tokens": sum(r.output_tokens for r in records),
        "total_tokens": sum(r.total_tokens for r in records),
        "cost_usd": str(sum(costs, Decimal(0))),
        "unpriced_calls": sum(1 for r in records if r.cost_usd is None and r.outcome == "ok"),
    }


class CallStore:
    def __init__(self, max_records: int = 10_000):
        self._records: deque[CallRecord] = deque(maxlen=max_records)
        self._lock = threading.Lock()

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def all(self) -> list[CallRecord]:
        with self._lock:
            return list(self._records)

    def find(
        self,
        *,
        run_id: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
    ) -> list[CallRecord]:
        """Newest first."""
        found = []
        for record in reversed(self.all()):
            if run_id and run_id not in (record.run_id, record.metadata.get("root_run_id")):
                continue
            if request_id and record.request_id != request_id:
                continue
            if model and model not in (record.model, record.alternative):
                continue
            if outcome and record.outcome != outcome:
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found

    def stats(self) -> dict[str, Any]:
        records = self.all()
        by_model: dict[str, list[CallRecord]] = {}
        for record in records:
            by_model.setdefault(record.model, []).append(record)
        fallbacks = sum(1 for r in records if r.outcome == "ok" and (r.rung or 0) > 0)
        return {
            "totals": {**_summary(records), "fallback_answers": fallbacks},
            "models": {model: _summary(group) for model, group in sorted(by_model.items())},
        }
