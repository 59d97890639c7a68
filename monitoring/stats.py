"""``summarize``: the figures behind ``/monitoring/stats`` and the dashboard, from call records."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from vocabulary import Outcome
from vocabulary.records import CallRecord
from vocabulary.run_metadata import CACHE_HIT


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


def _summary(every: list[CallRecord]) -> dict[str, Any]:
    # An answer from the response cache is no model call: counted apart, with what it saved.
    hits = [r for r in every if r.outcome == Outcome.CACHED]
    records = [r for r in every if r.outcome != Outcome.CACHED]
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
        "cache_hits": len(hits),
        "cache_saved_usd": str(sum((saved_usd(r) for r in hits), Decimal(0))),
    }


def saved_usd(record: CallRecord) -> Decimal:
    """What a response-cache hit saved: the cost of the answer it served (0 when not priced)."""
    cache = record.metadata.get(CACHE_HIT)
    saved = cache.get("saved_usd") if isinstance(cache, dict) else None
    try:
        return Decimal(str(saved)) if saved is not None else Decimal(0)
    except ArithmeticError:
        return Decimal(0)


def summarize(records: Iterable[CallRecord]) -> dict[str, Any]:
    """Totals and per-model figures: calls, errors, latency and first-token percentiles,
    tokens, cost, the share of answers that came from a fallback rung, and the answers the response
    cache gave instead of the model (``cache_hits``) with the money they saved."""
    records = list(records)
    by_model: dict[str, list[CallRecord]] = {}
    for record in records:
        by_model.setdefault(record.model, []).append(record)
    return {
        "totals": _summary(records),
        "models": {model: _summary(group) for model, group in sorted(by_model.items())},
    }
