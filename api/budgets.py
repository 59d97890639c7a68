"""``GET /budgets``: where each money budget stands: spent, held by calls in flight, left, and
when it resets. A key sees the lines it counts against (its key's, its user's, its tier's and
its tags'); an admin key sees every line with spend on record and every budget with a fixed
subject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.roles import caller_of
from policy.budget_book import BudgetBook
from policy.budgets import BudgetLine
from policy.keys import Caller
from vocabulary.run_metadata import API_KEY_ID, BUDGET_TAG, TIER, USER_ID


def own_lines(book: BudgetBook, caller: Caller) -> list[BudgetLine]:
    identity: dict[str, object] = {API_KEY_ID: caller.key_id, USER_ID: caller.user_id, TIER: caller.tier_name}
    lines = {line.id: line for line in book.lines_for(identity)}
    for tag in sorted(caller.tags):
        lines.update({line.id: line for line in book.lines_for({BUDGET_TAG: tag})})
    return [lines[line_id] for line_id in sorted(lines)]


def budgets_router(book: BudgetBook) -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get("/budgets")
    async def budgets(request: Request) -> dict[str, Any]:
        caller = caller_of(request)
        lines = await book.known_lines() if caller.admin else own_lines(book, caller)
        statuses = await book.statuses(lines) if lines else []
        return {"timezone": book.zone.key, "budgets": [status.as_dict() for status in statuses]}

    return api
