"""``CallRecord``: one per LLM attempt, and ``summarize``: the figures behind ``/monitoring/stats``."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from vocabulary import Outcome


@dataclass(frozen=True)
class CallRecord:
    run_id: str
    root_run_id: str | None  # the run id a route returned to the client
    request_id: str | None
    route: str | None
    ladder: str | None
    rung: int | None  # 0 for the first choice, n for the n-th fallback
    alternative: str | None
    provider: str
    model: str
    started_at: datetime
    duration_s: float
    first_token_s: float | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None  # None: the model is not in the price table
    outcome: Outcome
    cause: str | None
    error: str | None
    prompt_chars: int
    answer_chars: int
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # the server's stamps; the client's under "client"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def user_id(self) -> str | None:
        value = self.metadata.get("user_id")
        return None if value is None else str(value)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["cost_usd"] = None if self.cost_usd is None else str(self.cost_usd)
        data["total_tokens"] = self.total_tokens
        return data


@dataclass(frozen=True)
class FeedbackRecord:
    """A person's score (0 to 1) for the answer of one run, and what it taught the router."""

    run_id: str
    score: float
    comment: str | None
    user_id: str | None
    question_type: str | None
    alternative: str | None
    at: datetime


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


def _summary(records: list[CallRecord]) -> dict[str, Any]:
    errors = sum(1 for r in records if r.outcome == Outcome.ERROR)
    answers = [r for r in records if r.outcome == Outcome.OK]
    fallbacks = sum(1 for r in answers if (r.rung or 0) > 0)
    return {
        "calls": len(records),
        "errors": errors,
        "error_rate": errors / len(records) if records else 0.0,
        "cancelled": sum(1 for r in records if r.outcome == Outcome.CANCELLED),
        "latency_s": percentiles([r.duration_s for r in answers]),
        "first_token_s": percentiles([r.first_token_s for r in answers if r.first_token_s is not None]),
        "input_tokens": sum(r.input_tokens for r in records),
        "output_tokens": sum(r.output_tokens for r in records),
        "cached_input_tokens": sum(r.cached_input_tokens for r in records),
        "reasoning_tokens": sum(r.reasoning_tokens for r in records),
        "total_tokens": sum(r.total_tokens for r in records),
        "cost_usd": str(sum((r.cost_usd for r in records if r.cost_usd is not None), Decimal(0))),
        "unpriced_calls": sum(1 for r in answers if r.cost_usd is None),
        "fallback_answers": fallbacks,
        "fallback_rate": fallbacks / len(answers) if answers else 0.0,
    }


def summarize(records: Iterable[CallRecord]) -> dict[str, Any]:
    """Totals and per-model figures: calls, errors, latency and first-token percentiles,
    tokens, cost, and the share of answers that came from a fallback rung."""
    records = list(records)
    by_model: dict[str, list[CallRecord]] = {}
    for record in records:
        by_model.setdefault(record.model, []).append(record)
    return {
        "totals": _summary(records),
        "models": {model: _summary(group) for model, group in sorted(by_model.items())},
    }
