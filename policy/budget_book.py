"""``BudgetBook``: the money budgets of every caller, checked before each request and each call.

- ``admit``: before a request runs. A line spent to its limit refuses it (429 ``budget_exhausted``,
  with when it resets), or, when its budget downgrades, names itself so the request is served by
  the cheap alternative only.
- ``hold``: before each model call of a ladder (``resilience.ladder_policies.SpendGate``). The
  call's most it can cost, its prompt's tokens at most (one per UTF-8 byte: no tokenizer makes
  fewer bytes a token) and its ``max_tokens`` (or ``LLM_SERVER_BUDGET_MAX_OUTPUT_TOKENS``, which the
  call is then held to) at the model's price, is held on every line it counts against, in one
  atomic step, or the call is refused. So concurrent calls can never spend past a limit: each call
  spends at most what it held.
- ``settle``: after the call, what it really cost (its records' cost, cancelled calls' included)
  is spent and its hold released, off the request path. A call whose record comes after its try
  ended, or that ran outside a ladder, is charged without a hold (``charge_record``).

Crossing a soft share of a limit, or the limit, raises the ``budget`` alert once per window (the
ledger's step says where the spend was before and after, so one replica sees each crossing).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from errors import BudgetExhausted
from monitoring.alert_rules import Signal
from monitoring.background_tasks import BackgroundTasks
from monitoring.pricing import PriceTable
from policy.budget_ledger import BudgetLedger, Change, Counted, Standing
from policy.budgets import Budget, BudgetLine, lines_of, to_pico, to_usd, window_of
from vocabulary.records import CallRecord

logger = logging.getLogger("llm_server.budgets")

# A chat message's framing (role, separators) is a few tokens in every tokenizer; held on top of the text.
MESSAGE_FRAMING_TOKENS = 8


def prompt_tokens_at_most(text: str, messages: int) -> int:
    """An upper bound on a prompt's tokens: one per UTF-8 byte (a byte-level BPE token covers one
    byte or more, and SentencePiece falls back to bytes), and each message's framing."""
    return len(text.encode("utf-8")) + MESSAGE_FRAMING_TOKENS * max(1, messages)


@dataclass(frozen=True)
class Hold:
    """Money held on ``lines`` for one call; ``cap``: the output tokens the call is held to."""

    id: str
    lines: tuple[BudgetLine, ...]
    amount: int  # pico-dollars
    cap: int


@dataclass(frozen=True)
class LineStatus:
    line: BudgetLine
    standing: Standing
    resets_at: datetime

    def as_dict(self) -> dict[str, Any]:
        budget, limit = self.line.budget, self.line.limit
        left = max(0, limit - self.standing.spent - self.standing.held)
        return {
            "budget": budget.name,
            "line": self.line.id,
            "scope": budget.scope,
            "subject": self.line.subject,
            "window": budget.window if budget.days is None else f"rolling {budget.days} days",
            "action": budget.action,
            "limit_usd": str(budget.limit_usd),
            "spent_usd": str(to_usd(self.standing.spent)),
            "held_usd": str(to_usd(self.standing.held)),
            "remaining_usd": str(to_usd(left)),
            "used": round(self.standing.spent / limit, 6),
            "soft": budget.soft,
            "resets_at": self.resets_at.isoformat(),
        }


class BudgetBook:
    def __init__(
        self,
        budgets: Sequence[Budget],
        ledger: BudgetLedger,
        prices: PriceTable,
        *,
        zone: ZoneInfo,
        max_output_tokens: int,
        hold_ttl_s: float,
        signal: Callable[[Signal], None] = lambda _: None,
        on_status: Callable[[LineStatus], None] = lambda _: None,
        clock: Callable[[], float] = time.time,
    ):
        """``signal``: where crossing alerts go; ``on_status``: each line's standing as the ledger
        last reported it (the metrics); ``clock``: wall time in seconds (it places the windows)."""
        self.budgets = list(budgets)
        self.ledger = ledger
        self.prices = prices
        self.zone = zone
        self.max_output_tokens = max_output_tokens
        self.hold_ttl_s = hold_ttl_s
        self.signal = signal
        self.on_status = on_status
        self.clock = clock
        self._tasks = BackgroundTasks()
        self._fired: dict[str, tuple[str, list[Signal]]] = {}  # line -> its window, and the alerts fired in it

    @property
    def enabled(self) -> bool:
        return bool(self.budgets)

    def lines_for(self, identity: Mapping[str, object]) -> list[BudgetLine]:
        return lines_of(self.budgets, identity)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _counted(self, lines: Sequence[BudgetLine], now: datetime) -> list[Counted]:
        return [Counted(line.id, line.limit, window_of(line.budget, now, self.zone)) for line in lines]

    def _retry_after(self, line: BudgetLine, now: datetime) -> float:
        """Seconds until the line's spend first falls: its window's reset, or for a rolling window
        the next midnight, when its oldest day leaves."""
        window = window_of(line.budget, now, self.zone)
        at = window.leaves_at[0] if line.budget.window == "rolling" else window.resets_at
        return max(1.0, (at - now).total_seconds())

    async def statuses(self, lines: Sequence[BudgetLine]) -> list[LineStatus]:
        now = self._now()
        counted = self._counted(lines, now)
        standings = await self.ledger.read(counted, now.timestamp())
        statuses = [
            LineStatus(line, standing, c.window.resets_at)
            for line, standing, c in zip(lines, standings, counted, strict=True)
        ]
        for status in statuses:
            self.on_status(status)
        return statuses

    async def known_lines(self) -> list[BudgetLine]:
        """Every line with spend on record, and every budget with a fixed subject."""
        by_name = {budget.name: budget for budget in self.budgets}
        lines = [BudgetLine(b, b.subject) for b in self.budgets if b.subject != "*"]
        for line_id in await self.ledger.known_lines():
            name, _, subject = line_id.partition(":")
            if name in by_name and subject:
                lines.append(BudgetLine(by_name[name], subject))
        return sorted({line.id: line for line in lines}.values(), key=lambda line: line.id)

    async def admit(self, identity: Mapping[str, object]) -> BudgetLine | None:
        """Before a request: raise ``BudgetExhausted`` if a refusing line is spent; the first
        downgrading line that is, if any (the request is then served by the cheap alternative)."""
        lines = self.lines_for(identity)
        if not lines:
            return None
        downgraded = None
        for status in await self.statuses(lines):
            if status.standing.spent < status.line.limit:
                continue
            if status.line.budget.action == "refuse":
                raise self._spent(status.line, status.standing)
            downgraded = downgraded or status.line
        return downgraded

    def _spent(self, line: BudgetLine, standing: Standing) -> BudgetExhausted:
        now = self._now()
        budget = line.budget
        resets = window_of(budget, now, self.zone).resets_at
        return BudgetExhausted(
            f"the budget {budget.name!r} ({budget.scope} {line.subject}) has spent ${to_usd(standing.spent):f} of "
            f"${budget.limit_usd} this window; it resets at {resets.isoformat()}: wait for Retry-After, "
            "or ask the operator to raise it",
            retry_after=self._retry_after(line, now),
            details=self._details(line, standing, resets),
        )

    @staticmethod
    def _details(line: BudgetLine, standing: Standing, resets: datetime) -> dict[str, Any]:
        return {
            "budget": line.budget.name,
            "scope": line.budget.scope,
            "subject": line.subject,
            "action": line.budget.action,
            "limit_usd": str(line.budget.limit_usd),
            "spent_usd": str(to_usd(standing.spent)),
            "held_usd": str(to_usd(standing.held)),
            "resets_at": resets.isoformat(),
        }

    def most_cost(self, price_key: str, input_tokens: int, output_tokens: int) -> int | None:
        """The most a call can cost in pico-dollars; None for a model the price table lacks."""
        price = self.prices.price_of(price_key)
        if price is None:
            return None
        return to_pico((input_tokens * price.input + output_tokens * price.output) / Decimal(1_000_000))

    async def hold(
        self, identity: Mapping[str, object], price_key: str, input_tokens: int, max_tokens: int | None
    ) -> Hold | None:
        """Hold the most a call can cost on each line it counts against, or raise
        ``BudgetExhausted`` (``downgrades`` set when the refusing budget downgrades instead). None:
        nothing to hold (no budget applies, or the model costs nothing or has no price)."""
        lines = self.lines_for(identity)
        if not lines:
            return None
        cap = max_tokens or self.max_output_tokens
        amount = self.most_cost(price_key, input_tokens, cap)
        if not amount:
            return None
        now = self._now()
        counted = self._counted(lines, now)
        hold_id = uuid.uuid4().hex
        expires = now.timestamp() + self.hold_ttl_s
        reserved = await self.ledger.reserve(counted, hold_id, amount, expires, now.timestamp())
        if reserved.refused is None:
            return Hold(hold_id, tuple(lines), amount, cap)
        line, standing = lines[reserved.refused], reserved.standings[reserved.refused]
        if standing.spent >= line.limit:
            raise self._spent(line, standing).downgrading(line.budget.action == "downgrade")
        left = max(0, line.limit - standing.spent - standing.held)
        resets = counted[reserved.refused].window.resets_at
        raise BudgetExhausted(
            f"the budget {line.budget.name!r} ({line.budget.scope} {line.subject}) has ${to_usd(left):f} left "
            f"(${to_usd(standing.held):f} more is held by calls in flight) and this call may cost up to "
            f"${to_usd(amount):f} at {price_key}'s price ({input_tokens} prompt tokens at most, {cap} output "
            "tokens): send a lower max_tokens or a shorter prompt, or wait for Retry-After",
            retry_after=self._retry_after(line, now),
            details={**self._details(line, standing, resets), "call_most_usd": str(to_usd(amount))},
        ).downgrading(line.budget.action == "downgrade")

    def settle(self, hold: Hold | None, cost: Decimal | None, identity: Mapping[str, object]) -> None:
        """After a call's try: release its hold and spend what it cost (without a hold, charge it)."""
        actual = to_pico(cost) if cost else 0
        if hold is not None:
            self._tasks.start(self._settle(hold, actual), f"budget hold {hold.id}")
        elif actual:
            lines = self.lines_for(identity)
            if lines:
                self._tasks.start(self._charge(lines, actual), "budget charge")

    def charge_record(self, record: CallRecord) -> None:
        """A call's cost with no try waiting for it (it ended after its try, or ran outside a ladder)."""
        self.settle(None, record.cost_usd, record.metadata)

    async def _settle(self, hold: Hold, actual: int) -> None:
        now = self._now()
        counted = self._counted(hold.lines, now)
        changes = await self.ledger.settle(counted, hold.id, actual)
        self._crossed(hold.lines, counted, changes)

    async def _charge(self, lines: Sequence[BudgetLine], actual: int) -> None:
        now = self._now()
        counted = self._counted(lines, now)
        changes = await self.ledger.charge(counted, actual)
        self._crossed(lines, counted, changes)

    def _crossed(self, lines: Sequence[BudgetLine], counted: Sequence[Counted], changes: Sequence[Change]) -> None:
        for line, c, change in zip(lines, counted, changes, strict=True):
            self.on_status(LineStatus(line, Standing(change.after, 0), c.window.resets_at))
            self._new_window(line, c)
            for share in sorted({*line.budget.soft, 1.0}):
                mark = line.limit * share
                if change.before < mark <= change.after:
                    self._alert(line, c, share, change.after)

    def _alert(self, line: BudgetLine, counted: Counted, share: float, spent: int) -> None:
        budget = line.budget
        reached = "its limit" if share >= 1 else f"{share:.0%} of its limit"
        action = "; further calls are " + ("refused" if budget.action == "refuse" else "downgraded")
        message = (
            f"budget {budget.name} ({budget.scope} {line.subject}) reached {reached}: ${to_usd(spent):f} of "
            f"${budget.limit_usd} spent in the window to {counted.window.resets_at.isoformat()}"
            + (action if share >= 1 else "")
        )
        severity = "critical" if share >= 1 else "warning"
        labels = {"budget": budget.name, "subject": line.subject, "share": f"{share:g}"}
        subject = f"{line.id}@{share:g}@{counted.window.current}"  # once per window and share
        signal = Signal("budget", subject, True, message, severity, labels)
        self._fired.setdefault(line.id, (counted.window.current, []))[1].append(signal)
        self.signal(signal)

    def _new_window(self, line: BudgetLine, counted: Counted) -> None:
        """A line's spend went to a new window: the alerts of its last one resolve."""
        window, fired = self._fired.get(line.id, (counted.window.current, []))
        if window == counted.window.current:
            return
        del self._fired[line.id]
        for signal in fired:
            message = f"budget {line.budget.name} ({line.budget.scope} {line.subject}): a new window began"
            self.signal(Signal(signal.rule, signal.subject, False, message, signal.severity, signal.labels))

    async def drain(self) -> None:
        """Wait until every settlement made so far is counted (at shutdown, and in tests)."""
        await self._tasks.drain()
