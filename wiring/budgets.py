"""The money budgets from settings: the ``BudgetBook`` on the shared ledger (Redis) or this
process's, its alerts through monitoring's engine and its standings into the metrics, and the
ladders' gate and late charges wired to it."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from policy.budget_book import BudgetBook, LineStatus
from policy.budget_ledger import MemoryBudgetLedger
from policy.budgets import to_usd
from resilience.ladder_policies import LadderPolicies
from settings import Settings
from wiring.monitoring import Monitoring
from wiring.shared_state import SharedState


def build_budget_book(settings: Settings, monitoring: Monitoring, shared: SharedState) -> BudgetBook:
    ledger = shared.budget_ledger(settings.budget_hold_ttl_s) or MemoryBudgetLedger()

    def exported(status: LineStatus) -> None:
        line, standing = status.line, status.standing
        left = max(0, line.limit - standing.spent - standing.held)
        monitoring.metrics.observe_budget(
            line.budget.name,
            line.subject,
            float(to_usd(standing.spent)),
            float(to_usd(left)),
            float(line.budget.limit_usd),
        )

    return BudgetBook(
        settings.budgets,
        ledger,
        monitoring.prices,
        zone=ZoneInfo(settings.budget_timezone),
        max_output_tokens=settings.budget_max_output_tokens,
        hold_ttl_s=settings.budget_hold_ttl_s,
        signal=monitoring.engine.signal,
        on_status=exported,
    )


def gate_ladders(book: BudgetBook, kit: LadderPolicies, monitoring: Monitoring) -> None:
    """Every try's cost comes from its records; with budgets, ladders hold money before each call
    and calls that ended after their try are charged late."""
    monitoring.feed(kit.costs.observe)
    if book.enabled:
        kit.spend = book
        kit.costs.late.append(book.charge_record)
