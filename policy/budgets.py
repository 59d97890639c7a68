"""``Budget``: a limit in money on what a scope of callers spends in a window, and ``BudgetLine``:
one budget for one subject, the thing that is counted.

A budget's ``scope`` says whose spend it counts: an API key's, a user's, a tier's or a budget
tag's (a team or project the client names as ``budget_tag`` in its metadata; the keys file says
which tags each key may charge). ``subject`` names one of them, or ``*`` for each of them apart
(``scope = "key", subject = "*"``: every key has the limit of its own).

Windows are counted in calendar days of the operator's time zone (``LLM_SERVER_BUDGET_TIMEZONE``):

- ``daily``: today, from local midnight; resets at the next one;
- ``monthly``: this calendar month; resets on the 1st at local midnight;
- ``rolling``: the last ``days`` days, today included, in day buckets: each midnight the oldest
  day's spend leaves the window.

Amounts are kept in whole pico-dollars (``to_pico``), so counters add exactly, in Redis too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, StringConstraints, model_validator

from vocabulary.run_metadata import API_KEY_ID, BUDGET_TAG, TIER, USER_ID

Scope = Literal["key", "user", "tier", "tag"]
WindowKind = Literal["daily", "monthly", "rolling"]
Action = Literal["refuse", "downgrade"]
EVERY = "*"  # a budget's subject: each subject of its scope apart
PICO = Decimal(10) ** 12
TAG_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_SCOPE_KEYS: dict[str, str] = {"key": API_KEY_ID, "user": USER_ID, "tier": TIER, "tag": BUDGET_TAG}


def to_pico(usd: Decimal) -> int:
    """Whole pico-dollars, rounded up: a reservation never falls short by a rounding."""
    return int((usd * PICO).to_integral_value(rounding=ROUND_CEILING))


def to_usd(pico: int) -> Decimal:
    return Decimal(pico) / PICO


class Budget(BaseModel):
    name: Annotated[str, StringConstraints(pattern=TAG_PATTERN)] = Field(
        description="The budget's name, in alerts, metrics and 429 bodies."
    )
    scope: Scope = Field(description="Whose spend it counts: an API key's, a user's, a tier's or a budget tag's.")
    subject: str = Field(EVERY, min_length=1, description="Which key id, user, tier or tag; * for each apart.")
    limit_usd: Decimal = Field(gt=0, description="The hard limit in US dollars per window.")
    window: WindowKind = Field("monthly", description="daily, monthly, or rolling (with days).")
    days: int | None = Field(None, ge=1, le=366, description="A rolling window's length in days.")
    soft: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.8, 0.95],
        description="Shares of the limit that raise an alert, once per window each.",
    )
    action: Action = Field(
        "refuse", description="At the limit: refuse with 429 budget_exhausted, or downgrade to the cheap alternative."
    )

    @model_validator(mode="after")
    def _window_days(self) -> Self:
        if self.window == "rolling" and self.days is None:
            raise ValueError(f"budget {self.name!r}: a rolling window needs days (e.g. 7 or 30)")
        if self.window != "rolling" and self.days is not None:
            raise ValueError(f"budget {self.name!r}: days is for rolling windows only; this one is {self.window}")
        return self


@dataclass(frozen=True)
class Window:
    """Where a line's window stands now: the day buckets it sums (oldest first; one month bucket
    for a monthly window), the bucket spend goes to now, and when each bucket leaves the window."""

    buckets: tuple[str, ...]
    current: str
    leaves_at: tuple[datetime, ...]  # per bucket: when its spend stops counting

    @property
    def resets_at(self) -> datetime:
        """When the whole window's spend has left it (the current bucket's end)."""
        return self.leaves_at[-1]

    @property
    def ttl_s(self) -> int:
        """How long a bucket's counter must be kept: the longest any bucket stays in the window, and a day."""
        span = self.leaves_at[-1] - datetime.combine(_day_of(self.buckets[0]), time(), self.leaves_at[-1].tzinfo)
        return math.ceil(span.total_seconds()) + 86_400


def _day_of(bucket: str) -> date:
    return date.fromisoformat(bucket if len(bucket) == 10 else bucket + "-01")


def window_of(budget: Budget, now: datetime, zone: ZoneInfo) -> Window:
    local = now.astimezone(zone)
    today = local.date()

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), zone)

    if budget.window == "monthly":
        first_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        bucket = f"{today:%Y-%m}"
        return Window((bucket,), bucket, (midnight(first_next),))
    days = budget.days if budget.window == "rolling" and budget.days else 1
    span = [today - timedelta(days=back) for back in range(days - 1, -1, -1)]
    leaves = tuple(midnight(day + timedelta(days=days)) for day in span)
    return Window(tuple(day.isoformat() for day in span), today.isoformat(), leaves)


@dataclass(frozen=True)
class BudgetLine:
    """One budget counted for one subject (``subject`` is never ``*`` here)."""

    budget: Budget
    subject: str

    @property
    def id(self) -> str:
        return f"{self.budget.name}:{self.subject}"

    @property
    def limit(self) -> int:
        return to_pico(self.budget.limit_usd)


def lines_of(budgets: list[Budget], identity: Mapping[str, object]) -> list[BudgetLine]:
    """The lines a call made with ``identity`` (run metadata: key id, user, tier, budget tag) counts against."""
    lines = []
    for budget in budgets:
        value = identity.get(_SCOPE_KEYS[budget.scope])
        if value is None or value == "":
            continue
        if budget.subject in (EVERY, str(value)):
            lines.append(BudgetLine(budget, str(value)))
    return lines
