"""``PendingWrites``: what ``CallStore`` has not written to SQLite yet, bounded.

Records wait here between two flushes, and for as long as the file cannot be written (disk full,
read-only). Each kind keeps at most ``limit`` items: past it the oldest is dropped and counted, so
a long outage costs bounded memory and whatever is lost is known, never silent. The oldest go
first because the newest describe the incident still going on. One lock guards everything: sync
chain invocations may report from worker threads.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TypeVar

from callbacks.alert_model import Alert
from callbacks.dispatch import DeliveryResult
from callbacks.records import CallRecord, FeedbackRecord

T = TypeVar("T")


@dataclass
class Batch:
    """Records of each kind, oldest first."""

    calls: deque[CallRecord] = field(default_factory=deque)
    alerts: deque[Alert] = field(default_factory=deque)
    deliveries: deque[DeliveryResult] = field(default_factory=deque)
    feedback: deque[FeedbackRecord] = field(default_factory=deque)

    def sizes(self) -> dict[str, int]:
        return {
            "calls": len(self.calls),
            "alerts": len(self.alerts),
            "deliveries": len(self.deliveries),
            "feedback": len(self.feedback),
        }

    def __len__(self) -> int:
        return len(self.calls) + len(self.alerts) + len(self.deliveries) + len(self.feedback)


class PendingWrites:
    def __init__(self, limit: int):
        self.limit = limit
        self._batch = Batch()
        self._dropped: Counter[str] = Counter()  # since the last ``take_dropped``
        self._lock = threading.Lock()

    def add_call(self, record: CallRecord) -> None:
        with self._lock:
            self._append(self._batch.calls, record, "calls")

    def add_alert(self, alert: Alert) -> None:
        with self._lock:
            self._append(self._batch.alerts, alert, "alerts")

    def add_delivery(self, delivery: DeliveryResult) -> None:
        with self._lock:
            self._append(self._batch.deliveries, delivery, "deliveries")

    def add_feedback(self, feedback: FeedbackRecord) -> None:
        with self._lock:
            self._append(self._batch.feedback, feedback, "feedback")

    def take(self) -> Batch:
        """Everything waiting; the caller writes it, or hands it back with ``restore``."""
        with self._lock:
            batch, self._batch = self._batch, Batch()
        return batch

    def restore(self, batch: Batch) -> None:
        """Put back a batch that could not be written, ahead of what arrived since (order kept)."""
        with self._lock:
            newer, self._batch = self._batch, batch
            self._merge(batch.calls, newer.calls, "calls")
            self._merge(batch.alerts, newer.alerts, "alerts")
            self._merge(batch.deliveries, newer.deliveries, "deliveries")
            self._merge(batch.feedback, newer.feedback, "feedback")

    def snapshot(self) -> Batch:
        """A copy of what is waiting, for reads that must include it."""
        with self._lock:
            b = self._batch
            return Batch(deque(b.calls), deque(b.alerts), deque(b.deliveries), deque(b.feedback))

    def sizes(self) -> dict[str, int]:
        with self._lock:
            return self._batch.sizes()

    def take_dropped(self) -> dict[str, int]:
        """Records dropped per kind since the last call."""
        with self._lock:
            dropped, self._dropped = dict(self._dropped), Counter()
        return dropped

    def _merge(self, older: deque[T], newer: deque[T], kind: str) -> None:
        older.extend(newer)
        self._trim(older, kind)

    def _append(self, items: deque[T], item: T, kind: str) -> None:
        items.append(item)
        self._trim(items, kind)

    def _trim(self, items: deque[T], kind: str) -> None:
        excess = len(items) - self.limit
        for _ in range(max(excess, 0)):
            items.popleft()
        if excess > 0:
            self._dropped[kind] += excess
