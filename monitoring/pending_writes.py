"""``PendingWrites``: what ``CallStore`` has not written to SQLite yet, bounded in count and bytes.

Records wait here between two flushes, and for as long as the file cannot be written (disk full,
read-only). Each kind keeps at most ``limit`` items and ``max_bytes`` bytes: past either the oldest
are dropped and counted, so a long outage costs bounded memory and whatever is lost is known,
never silent. The oldest go first because the newest describe the incident still going on; an item
larger than ``max_bytes`` by itself is dropped (and counted) on arrival, so it does not push out
everything older for nothing. An item's size is estimated once, when it is added: its free-size
parts (a call's tags, metadata and error; an alert's key, message and labels; a delivery's error; a
feedback comment) as UTF-8 JSON, plus ``FIXED_BYTES`` for the rest. A count bound alone bounded
nothing: client metadata may be kilobytes per call. One lock guards everything: sync chain
invocations may report from worker threads.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from monitoring.alert import Alert
from monitoring.alert_dispatcher import DeliveryResult
from vocabulary.records import CallRecord, FeedbackRecord

FIXED_BYTES = 512  # an item's fixed-size fields, as stored
BYTES_PER_ITEM = 2048  # with no byte bound given, ``limit`` items of about this size
KINDS = ("calls", "alerts", "deliveries", "feedback")


def estimated_bytes(item: object) -> int:
    """What ``item`` takes while it waits, estimated from its free-size parts."""
    parts: tuple[object, ...]
    if isinstance(item, CallRecord):
        parts = (item.tags, item.metadata, item.error)
    elif isinstance(item, Alert):
        parts = (item.key, item.message, item.labels)
    elif isinstance(item, DeliveryResult):
        parts = (item.error,)
    elif isinstance(item, FeedbackRecord):
        parts = (item.comment,)
    else:
        parts = ()
    # surrogatepass: a provider's error text (or a record from before metadata was checked) may hold
    # a lone surrogate; measuring it must not fail the record.
    return FIXED_BYTES + len(json.dumps(parts, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))


@dataclass
class Batch:
    """Records of each kind, oldest first; ``weights``: each one's estimated bytes, in the same
    order (filled in by ``PendingWrites``)."""

    calls: deque[CallRecord] = field(default_factory=deque)
    alerts: deque[Alert] = field(default_factory=deque)
    deliveries: deque[DeliveryResult] = field(default_factory=deque)
    feedback: deque[FeedbackRecord] = field(default_factory=deque)
    weights: dict[str, deque[int]] = field(default_factory=lambda: {kind: deque() for kind in KINDS}, repr=False)

    def sizes(self) -> dict[str, int]:
        return {
            "calls": len(self.calls),
            "alerts": len(self.alerts),
            "deliveries": len(self.deliveries),
            "feedback": len(self.feedback),
        }

    def __len__(self) -> int:
        return len(self.calls) + len(self.alerts) + len(self.deliveries) + len(self.feedback)

    def items(self, kind: str) -> deque[object]:
        items: deque[object] = getattr(self, kind)
        return items

    def weights_of(self, kind: str) -> deque[int]:
        """``kind``'s weights, estimated now for items that came without (a batch built elsewhere)."""
        items, weights = self.items(kind), self.weights.setdefault(kind, deque())
        if len(weights) != len(items):
            weights.clear()
            weights.extend(estimated_bytes(item) for item in items)
        return weights


class PendingWrites:
    def __init__(self, limit: int, max_bytes: int | None = None):
        self.limit = limit
        self.max_bytes = max_bytes if max_bytes is not None else limit * BYTES_PER_ITEM
        self._batch = Batch()
        self._bytes: Counter[str] = Counter()  # estimated bytes waiting, per kind
        self._dropped: Counter[str] = Counter()  # since the last ``take_dropped``
        self._lock = threading.Lock()

    def add_call(self, record: CallRecord) -> None:
        self._add("calls", record)

    def add_alert(self, alert: Alert) -> None:
        self._add("alerts", alert)

    def add_delivery(self, delivery: DeliveryResult) -> None:
        self._add("deliveries", delivery)

    def add_feedback(self, feedback: FeedbackRecord) -> None:
        self._add("feedback", feedback)

    def take(self) -> Batch:
        """Everything waiting; the caller writes it, or hands it back with ``restore``."""
        with self._lock:
            batch, self._batch = self._batch, Batch()
            self._bytes.clear()
        return batch

    def restore(self, batch: Batch) -> None:
        """Put back a batch that could not be written, ahead of what arrived since (order kept)."""
        with self._lock:
            newer, self._batch = self._batch, batch
            for kind in KINDS:
                weights, newer_weights = batch.weights_of(kind), newer.weights_of(kind)
                batch.items(kind).extend(newer.items(kind))
                weights.extend(newer_weights)
                self._bytes[kind] = sum(weights)
                self._trim(kind)

    def snapshot(self) -> Batch:
        """A copy of what is waiting, for reads that must include it."""
        with self._lock:
            b = self._batch
            return Batch(deque(b.calls), deque(b.alerts), deque(b.deliveries), deque(b.feedback))

    def sizes(self) -> dict[str, int]:
        with self._lock:
            return self._batch.sizes()

    def byte_sizes(self) -> dict[str, int]:
        """Estimated bytes waiting, per kind."""
        with self._lock:
            return {kind: self._bytes[kind] for kind in KINDS}

    def take_dropped(self) -> dict[str, int]:
        """Records dropped per kind since the last call."""
        with self._lock:
            dropped, self._dropped = dict(self._dropped), Counter()
        return dropped

    def _add(self, kind: str, item: object) -> None:
        weight = estimated_bytes(item)  # outside the lock: it serializes the item's parts
        with self._lock:
            if weight > self.max_bytes:
                self._dropped[kind] += 1
                return
            self._batch.weights_of(kind).append(weight)
            self._batch.items(kind).append(item)
            self._bytes[kind] += weight
            self._trim(kind)

    def _trim(self, kind: str) -> None:
        items, weights = self._batch.items(kind), self._batch.weights_of(kind)
        while items and (len(items) > self.limit or self._bytes[kind] > self.max_bytes):
            items.popleft()
            self._bytes[kind] -= weights.popleft()
            self._dropped[kind] += 1
