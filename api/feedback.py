"""``POST /feedback`` (a person's score for an answer, which the adaptive router learns from) and
``GET /monitoring/routing`` (what the router believes and what it decided lately)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.roles import ADMIN_ONLY
from errors import RequestError
from policy.adaptive_router import AdaptiveRouter
from policy.answer_book import AlreadyRated, UnknownRun
from policy.keys import Caller
from vocabulary.records import FeedbackRecord
from wiring.monitoring import Monitoring


class Feedback(BaseModel):
    run_id: str = Field(min_length=1, max_length=64, description="The run id the route returned with the answer.")
    score: float = Field(ge=0, le=1, description="How good the answer was: 0 (bad) to 1 (good).")
    comment: str | None = Field(None, max_length=2000)


def routing_router(suite: Monitoring, router: AdaptiveRouter) -> APIRouter:
    api = APIRouter()

    @api.post("/feedback", tags=["routing"])
    async def feedback(item: Feedback, request: Request) -> dict[str, Any]:
        caller: Caller = request.state.caller
        try:
            learned = await router.feedback(
                item.run_id, item.score, user_id=caller.user_id if caller.authenticated else None
            )
        except UnknownRun:
            raise RequestError(
                f"no answer of yours with run id {item.run_id!r} is known: use the run_id a route returned "
                "(metadata.run_id) of a recent answer",
                status=404,
            ) from None
        except AlreadyRated:
            raise RequestError(f"the answer of run {item.run_id!r} has feedback already", status=409) from None
        suite.store.add_feedback(
            FeedbackRecord(
                run_id=item.run_id,
                score=item.score,
                comment=item.comment,
                user_id=caller.user_id,
                question_type=learned["question_type"],
                alternative=learned["alternative"],
                at=datetime.now(UTC),
            )
        )
        return {"accepted": True, "learned": learned}

    @api.get("/monitoring/routing", tags=["monitoring"], dependencies=ADMIN_ONLY)
    async def routing(feedback_limit: int = Query(20, ge=0, le=1000)) -> dict[str, Any]:
        """The router's estimate per question type and model, its recent decisions and feedback."""
        return {**router.snapshot(), "feedback": await suite.store.feedback(limit=feedback_limit)}

    return api
