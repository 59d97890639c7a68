"""What the dashboard shows, computed from call records: a timeline in equal buckets (latency
and time-to-first-token percentiles, calls, errors, fallback answers, tokens, cost), the totals
and per-model figures of ``/monitoring/stats``, and the causes of failed calls. No FastAPI here."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from monitoring.stats import percentiles, summarize
from vocabulary import Outcome
from vocabulary.records import CallRecord

TIMELINE_POINTS = 60


def bucket_seconds(window_s: float) -> int:
    """About ``TIMELINE_POINTS`` buckets over the window, each a whole number of seconds (at least 5)."""
    return max(5, math.ceil(window_s / TIMELINE_POINTS))


def timeline(records: Sequence[CallRecord], *, now: datetime, window_s: float) -> list[dict[str, Any]]:
    """One entry per bucket from ``now - window_s`` to ``now``, oldest first, empty ones included
    (so the charts' time axis has no gaps); latency figures are of answered calls only."""
    step = bucket_seconds(window_s)
    count = math.ceil(window_s / step)
    start = now - timedelta(seconds=count * step)
    buckets: list[list[CallRecord]] = [[] for _ in range(count)]
    for record in records:
        index = int((record.started_at - start).total_seconds() // step)
        if 0 <= index < count:
            buckets[index].append(record)
    points = []
    for index, bucket in enumerate(buckets):
        answered = [r for r in bucket if r.outcome == Outcome.OK]
        latency = percentiles([r.duration_s for r in answered])
        first_token = percentiles([r.first_token_s for r in answered if r.first_token_s is not None])
        hits = sum(1 for r in bucket if r.outcome == Outcome.CACHED)
        points.append(
            {
                "at": (start + timedelta(seconds=(index + 1) * step)).isoformat(),
                "calls": len(bucket) - hits,  # model calls; the response cache's answers apart
                "cache_hits": hits,
                "errors": sum(1 for r in bucket if r.outcome == Outcome.ERROR),
                "fallback_answers": sum(1 for r in answered if (r.rung or 0) > 0),
                "latency_p50_s": latency["p50"],
                "latency_p95_s": latency["p95"],
                "first_token_p50_s": first_token["p50"],
                "tokens": sum(r.total_tokens for r in bucket),
                "cost_usd": str(sum((r.cost_usd for r in bucket if r.cost_usd is not None), Decimal(0))),
            }
        )
    return points


def snapshot(records: Sequence[CallRecord], *, now: datetime, window_s: float) -> dict[str, Any]:
    failed = [r for r in records if r.outcome not in (Outcome.OK, Outcome.CACHED)]
    return {
        "window_s": window_s,
        "bucket_s": bucket_seconds(window_s),
        "timeline": timeline(records, now=now, window_s=window_s),
        **summarize(records),
        "causes": dict(Counter(r.cause or r.outcome for r in failed).most_common()),
    }
