"""``LatencyBoard``: recent latency per model, learned from monitored calls, for the
fastest-first ladder order. An exponentially weighted mean, so old traffic fades; touched from
the event loop only."""

from __future__ import annotations

from vocabulary import Outcome
from vocabulary.records import CallRecord


class LatencyBoard:
    def __init__(self, weight: float = 0.2):
        self.weight = weight  # share of the newest call in the mean
        self._mean: dict[str, float] = {}

    def observe(self, record: CallRecord) -> None:
        if record.outcome != Outcome.OK:
            return
        old = self._mean.get(record.model)
        self._mean[record.model] = record.duration_s if old is None else old + self.weight * (record.duration_s - old)

    def latency_of(self, model: str) -> float | None:
        return self._mean.get(model)
