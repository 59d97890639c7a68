"""``BudgetLedger``: where budget lines keep their spend and the holds of calls in flight, and
``MemoryBudgetLedger``, the one in this process (``shared_state.budgets.RedisBudgetLedger`` shares
one through Redis).

Each operation is one atomic step over every line a call counts against:

- ``reserve``: a call's most it can cost is held on each line, if each line's spend in its window,
  plus what is held for other calls, plus it, stays within the limit; otherwise nothing is held.
- ``settle``: the call ended: its holds go and what it really cost is spent.
- ``charge``: spend without a hold (a call that began outside a ladder, or ended after its try).

Holds expire (``expires_at``, wall-clock seconds): a replica that dies holding money gives it back.
Amounts are whole pico-dollars (``policy.budgets.to_pico``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from policy.budgets import Window


@dataclass(frozen=True)
class Counted:
    """One line as a ledger step counts it: its id, its limit and where its window stands."""

    line_id: str
    limit: int
    window: Window


@dataclass(frozen=True)
class Standing:
    spent: int  # in the window
    held: int  # for calls in flight


@dataclass(frozen=True)
class Reserved:
    standings: list[Standing]  # per line, before this hold
    refused: int | None = None  # the first line it did not fit, if any (then nothing was held)


@dataclass(frozen=True)
class Change:
    before: int  # the line's spend in its window before this step
    after: int


class BudgetLedger(Protocol):
    async def reserve(
        self, lines: Sequence[Counted], hold_id: str, amount: int, expires_at: float, now: float
    ) -> Reserved: ...

    async def settle(self, lines: Sequence[Counted], hold_id: str, actual: int) -> list[Change]: ...

    async def charge(self, lines: Sequence[Counted], amount: int) -> list[Change]: ...

    async def read(self, lines: Sequence[Counted], now: float) -> list[Standing]: ...

    async def known_lines(self) -> list[str]:
        """Every line id with spend recorded, for the operator's listing."""
        ...


class MemoryBudgetLedger:
    """Counters in this process. Every step runs without an ``await`` inside, so each is atomic
    with respect to the other requests on the event loop."""

    def __init__(self, base: dict[tuple[str, str], int] | None = None) -> None:
        """``base``: spend counted elsewhere that this ledger's steps count too (a shared ledger's
        last known totals, while it is away); ``spent`` then holds only what this one added."""
        self.spent: dict[tuple[str, str], int] = defaultdict(int)  # (line, bucket) -> pico-dollars
        self.holds: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)  # line -> hold -> (amount, expiry)
        self.base = base if base is not None else {}

    def spent_in(self, line: Counted) -> int:
        keys = [(line.line_id, bucket) for bucket in line.window.buckets]
        return sum(self.spent.get(key, 0) + self.base.get(key, 0) for key in keys)

    def held_on(self, line: Counted, now: float) -> int:
        holds = self.holds.get(line.line_id)
        if not holds:
            return 0
        for hold_id in [h for h, (_, expires) in holds.items() if expires <= now]:
            del holds[hold_id]
        return sum(amount for amount, _ in holds.values())

    def standing(self, line: Counted, now: float) -> Standing:
        return Standing(self.spent_in(line), self.held_on(line, now))

    async def reserve(
        self, lines: Sequence[Counted], hold_id: str, amount: int, expires_at: float, now: float
    ) -> Reserved:
        return self.reserve_now(lines, hold_id, amount, expires_at, now)

    def reserve_now(
        self, lines: Sequence[Counted], hold_id: str, amount: int, expires_at: float, now: float
    ) -> Reserved:
        standings = [self.standing(line, now) for line in lines]
        for index, (line, standing) in enumerate(zip(lines, standings, strict=True)):
            if standing.spent + standing.held + amount > line.limit:
                return Reserved(standings, index)
        for line in lines:
            self.holds[line.line_id][hold_id] = (amount, expires_at)
        return Reserved(standings)

    async def settle(self, lines: Sequence[Counted], hold_id: str, actual: int) -> list[Change]:
        return self.settle_now(lines, hold_id, actual)

    def settle_now(self, lines: Sequence[Counted], hold_id: str, actual: int) -> list[Change]:
        for line in lines:
            self.holds.get(line.line_id, {}).pop(hold_id, None)
        return self.charge_now(lines, actual)

    async def charge(self, lines: Sequence[Counted], amount: int) -> list[Change]:
        return self.charge_now(lines, amount)

    def charge_now(self, lines: Sequence[Counted], amount: int) -> list[Change]:
        changes = []
        for line in lines:
            before = self.spent_in(line)
            self.spent[(line.line_id, line.window.current)] += amount
            changes.append(Change(before, before + amount))
        return changes

    async def read(self, lines: Sequence[Counted], now: float) -> list[Standing]:
        return [self.standing(line, now) for line in lines]

    async def known_lines(self) -> list[str]:
        return sorted({line for line, _ in self.spent} | {line for line, holds in self.holds.items() if holds})
