"""``SpendWatch``: the seed's cost threshold. Adds every priced call's cost to a ``SpendLedger``
and raises ``cost_threshold`` once the total passes the threshold.

The ledger is in memory (spend since start-up) or shared by every replica through Redis (see
``shared_state.spend``), which is why adding is async: the watch schedules it off the request
path and keeps the tasks until they finish (``drain``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from monitoring.alert_rules import Signal
from monitoring.background_tasks import BackgroundTasks
from vocabulary.records import CallRecord


class SpendLedger(Protocol):
    async def add(self, usd: Decimal) -> Decimal:
        """Add ``usd`` and return the total spent so far."""
        ...


class MemorySpendLedger:
    def __init__(self) -> None:
        self.total = Decimal(0)

    async def add(self, usd: Decimal) -> Decimal:
        self.total += usd
        return self.total


class SpendWatch:
    name = "cost_threshold"

    def __init__(self, ledger: SpendLedger, threshold_usd: Decimal, signal: Callable[[Signal], None]):
        self.ledger = ledger
        self.threshold = threshold_usd
        self.signal = signal
        self._tasks = BackgroundTasks()

    def __call__(self, record: CallRecord) -> None:
        if record.cost_usd:
            self._tasks.start(self._add(record.cost_usd), f"spend of run {record.run_id}")

    async def _add(self, usd: Decimal) -> None:
        total = await self.ledger.add(usd)
        if total > self.threshold:
            message = f"cumulative cost ${total:.4f} passed ${self.threshold}"
            self.signal(Signal(self.name, "all", True, message, "critical"))

    async def drain(self) -> None:
        await self._tasks.drain()
