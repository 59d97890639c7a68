"""Budgets in money on this process's ledger, on a clock of the test's: each window kind in the
operator's time zone, holds that never let concurrent calls pass a limit, settlement of what calls
really cost, and the soft alerts once per window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from errors import BudgetExhausted
from monitoring.alert_rules import Signal
from monitoring.pricing import SHIPPED_PRICES, PriceTable
from policy.budget_book import BudgetBook, prompt_tokens_at_most
from policy.budget_ledger import MemoryBudgetLedger
from policy.budgets import Budget, lines_of, to_pico, window_of
from tests.helpers.clock import FakeClock
from vocabulary.run_metadata import API_KEY_ID, BUDGET_TAG, TIER, USER_ID

SEOUL = ZoneInfo("Asia/Seoul")
# 2026-12-01 23:30 in Seoul: half an hour before the local day (and, tomorrow, nothing else) turns.
LATE_EVENING = datetime(2026, 12, 1, 14, 30, tzinfo=UTC).timestamp()
ALICE = {API_KEY_ID: "key-alice", USER_ID: "alice", TIER: "pro"}
MINI = "gpt-4o-mini"  # 0.15 USD per million input tokens, 0.60 per million output


def budget(**fields: object) -> Budget:
    values: dict[str, object] = {"name": "keys", "scope": "key", "limit_usd": "0.001", "window": "daily"}
    values.update(fields)
    return Budget.model_validate(values)


def book_of(*budgets: Budget, clock: FakeClock, signals: list[Signal] | None = None, cap: int = 100) -> BudgetBook:
    return BudgetBook(
        budgets,
        MemoryBudgetLedger(),
        PriceTable.from_file(SHIPPED_PRICES),
        zone=SEOUL,
        max_output_tokens=cap,
        hold_ttl_s=900,
        signal=(signals.append if signals is not None else lambda _: None),
        clock=clock,
    )


def test_a_daily_window_is_the_local_day_and_resets_at_local_midnight() -> None:
    now = datetime.fromtimestamp(LATE_EVENING, UTC)
    window = window_of(budget(), now, SEOUL)

    assert window.buckets == ("2026-12-01",)
    assert window.resets_at == datetime(2026, 12, 2, tzinfo=SEOUL)
    assert window_of(budget(), datetime(2026, 12, 1, 15, 0, tzinfo=UTC), SEOUL).buckets == ("2026-12-02",)


def test_a_monthly_window_is_the_local_calendar_month() -> None:
    last_evening = datetime(2026, 12, 31, 14, 59, tzinfo=UTC)  # 23:59 on New Year's Eve in Seoul
    window = window_of(budget(window="monthly"), last_evening, SEOUL)

    assert window.buckets == ("2026-12",)
    assert window.resets_at == datetime(2027, 1, 1, tzinfo=SEOUL)
    assert window_of(budget(window="monthly"), datetime(2026, 12, 31, 15, 0, tzinfo=UTC), SEOUL).buckets == ("2027-01",)


def test_a_rolling_window_sums_the_last_n_local_days() -> None:
    now = datetime.fromtimestamp(LATE_EVENING, UTC)
    window = window_of(budget(window="rolling", days=3), now, SEOUL)

    assert window.buckets == ("2026-11-29", "2026-11-30", "2026-12-01")
    assert window.current == "2026-12-01"
    assert window.leaves_at[0] == datetime(2026, 12, 2, tzinfo=SEOUL), "the oldest day leaves at the next midnight"


def test_a_budget_is_checked_when_it_is_set() -> None:
    with pytest.raises(ValidationError, match="rolling window needs days"):
        budget(window="rolling")
    with pytest.raises(ValidationError, match="days is for rolling windows only"):
        budget(days=3)
    with pytest.raises(ValidationError):
        budget(limit_usd="0")


def test_lines_are_per_subject_for_every_subject_and_one_for_a_named_one() -> None:
    every_key, one_user, tags = budget(), budget(name="bob", scope="user", subject="bob"), budget(name="t", scope="tag")

    assert [line.id for line in lines_of([every_key, one_user, tags], ALICE)] == ["keys:key-alice"]
    assert [line.id for line in lines_of([one_user], {USER_ID: "bob"})] == ["bob:bob"]
    assert [line.id for line in lines_of([tags], {**ALICE, BUDGET_TAG: "search"})] == ["t:search"]
    assert lines_of([every_key], {API_KEY_ID: None, USER_ID: "anonymous"}) == [], "an open caller has no key"


def test_the_prompt_bound_is_never_under_a_byte_level_count() -> None:
    assert prompt_tokens_at_most("hello", 1) == 5 + 8
    assert prompt_tokens_at_most("안녕", 2) == 6 + 16, "a Hangul syllable is three bytes"


async def test_holds_refuse_the_call_that_would_pass_the_limit_and_settle_what_calls_cost() -> None:
    clock = FakeClock(LATE_EVENING)
    book = book_of(budget(limit_usd="0.0001"), clock=clock)  # 100 micro-dollars
    most = book.most_cost(MINI, 100, 100)  # 15 + 60 micro-dollars
    assert most == to_pico(Decimal("0.000075"))

    first = await book.hold(ALICE, MINI, 100, None)
    with pytest.raises(BudgetExhausted) as refused:
        await book.hold(ALICE, MINI, 100, None)
    assert first is not None and first.cap == 100
    assert refused.value.details["budget"] == "keys" and "held by calls in flight" in refused.value.message

    book.settle(first, Decimal("0.00002"), ALICE)  # it cost less than it held
    await book.drain()
    second = await book.hold(ALICE, MINI, 100, None)
    [status] = await book.statuses(book.lines_for(ALICE))

    assert second is not None, "the rest of the first hold was released"
    assert status.standing.spent == to_pico(Decimal("0.00002"))
    assert status.standing.held == most


async def test_concurrent_calls_never_spend_past_the_limit() -> None:
    book = book_of(budget(limit_usd="0.001"), clock=FakeClock(LATE_EVENING))

    async def call() -> bool:
        try:
            hold = await book.hold(ALICE, MINI, 100, 100)
        except BudgetExhausted:
            return False
        await asyncio.sleep(0)  # other calls hold meanwhile
        book.settle(hold, Decimal("0.000075"), ALICE)  # each spends all it held: the worst case
        return True

    ran = await asyncio.gather(*(call() for _ in range(100)))
    await book.drain()
    [status] = await book.statuses(book.lines_for(ALICE))

    assert sum(ran) == 13, "0.001 holds 13 calls of 0.000075"
    assert status.standing.spent == 13 * to_pico(Decimal("0.000075")) <= to_pico(Decimal("0.001"))


async def test_a_spent_budget_refuses_requests_until_its_window_resets() -> None:
    clock = FakeClock(LATE_EVENING)
    book = book_of(budget(limit_usd="0.00001"), clock=clock)
    book.settle(None, Decimal("0.00001"), ALICE)
    await book.drain()

    with pytest.raises(BudgetExhausted) as refused:
        await book.admit(ALICE)
    clock.now += 30 * 60  # past midnight in Seoul
    admitted = await book.admit(ALICE)

    assert refused.value.retry_after == 30 * 60
    assert refused.value.details["spent_usd"] == "0.00001" and refused.value.details["limit_usd"] == "0.00001"
    assert refused.value.details["resets_at"] == "2026-12-02T00:00:00+09:00"
    assert admitted is None


async def test_a_downgrading_budget_names_itself_instead_of_refusing() -> None:
    book = book_of(budget(limit_usd="0.00001", action="downgrade"), clock=FakeClock(LATE_EVENING))
    book.settle(None, Decimal("0.00001"), ALICE)
    await book.drain()

    downgraded = await book.admit(ALICE)
    with pytest.raises(BudgetExhausted) as refused:
        await book.hold(ALICE, MINI, 10, 10)

    assert downgraded is not None and downgraded.id == "keys:key-alice"
    assert refused.value.downgrades, "the ladder moves on to a cheaper rung"
    assert await book.hold(ALICE, "SmolLM2-135M-Instruct", 10, 10) is None, "a free model holds nothing"


async def test_a_rolling_window_lets_spend_go_as_its_days_leave() -> None:
    clock = FakeClock(LATE_EVENING)
    book = book_of(budget(limit_usd="0.00002", window="rolling", days=2), clock=clock)
    book.settle(None, Decimal("0.00002"), ALICE)
    await book.drain()

    with pytest.raises(BudgetExhausted) as on_the_day:
        await book.admit(ALICE)
    clock.now += 86_400  # the next day: the spend is still in the two-day window
    with pytest.raises(BudgetExhausted):
        await book.admit(ALICE)
    clock.now += 86_400

    assert on_the_day.value.retry_after == 30 * 60, "the earliest any spend can leave: the next midnight"
    assert await book.admit(ALICE) is None


async def test_soft_alerts_fire_once_per_window_each() -> None:
    clock, signals = FakeClock(LATE_EVENING), []
    book = book_of(budget(limit_usd="0.0001", soft=[0.5, 0.8]), clock=clock, signals=signals)

    for _ in range(12):  # 12 calls of 0.00001: past 50%, 80% and the limit
        book.settle(None, Decimal("0.00001"), ALICE)
        await book.drain()
    fired_today = [(s.labels["share"], s.severity) for s in signals]
    clock.now += 86_400
    book.settle(None, Decimal("0.00006"), ALICE)
    await book.drain()

    assert fired_today == [("0.5", "warning"), ("0.8", "warning"), ("1", "critical")]
    assert [(s.labels["share"], s.firing) for s in signals[3:]] == [
        ("0.5", False),
        ("0.8", False),
        ("1", False),
        ("0.5", True),
    ], "a new window: the last one's alerts resolve, and it has its own crossing"
    fired = [s.key for s in signals if s.firing]
    assert len(set(fired)) == len(fired), "each alert is its own subject: the engine keeps each once"
