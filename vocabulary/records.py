"""``CallRecord``: one per LLM attempt, and ``FeedbackRecord``: a person's score for one answer.
The values every layer passes around: the recorder makes them, monitoring stores and counts them,
resilience and policy learn from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from vocabulary import Outcome
from vocabulary.run_metadata import USER_ID


@dataclass(frozen=True)
class CallRecord:
    run_id: str
    root_run_id: str | None  # the run id a route returned to the client
    request_id: str | None
    route: str | None
    ladder: str | None
    rung: int | None  # 0 for the first choice, n for the n-th fallback
    alternative: str | None
    provider: str
    model: str
    started_at: datetime
    duration_s: float
    first_token_s: float | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None  # None: the model is not in the price table
    outcome: Outcome
    cause: str | None
    error: str | None
    prompt_chars: int
    answer_chars: int
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # the server's stamps; the client's under "client"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def user_id(self) -> str | None:
        value = self.metadata.get(USER_ID)
        return None if value is None else str(value)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["cost_usd"] = None if self.cost_usd is None else str(self.cost_usd)
        data["total_tokens"] = self.total_tokens
        return data


@dataclass(frozen=True)
class FeedbackRecord:
    """A person's score (0 to 1) for the answer of one run, and what it taught the router."""

    run_id: str
    score: float
    comment: str | None
    user_id: str | None
    question_type: str | None
    alternative: str | None
    at: datetime
