"""``AdaptiveRouter``: picks the model for ``llm_model=auto`` and ``/adaptive``, and learns.

The choice: a ``ModelBandit`` per question type over the caller's models that are configured,
starting from the preference table below. It learns from

- every monitored call of a classified question (``observe``, a call-record listener): an
  error scores 0; an answer scores 1 less a latency penalty and a cost penalty;
- feedback on an answer (``feedback``), by the run id the route returned, weighted more than a
  call's own signal because a person judged it.

Calls are measurements of the models, shared by everyone. Feedback is an opinion: with API keys
it is learned per tenant (the key's user), in arms of its own (``policy.bandit.personal_arms``)
that add to the shared evidence only when routing that tenant's questions. So no key's verdicts
move what anyone else is routed to; on an open server (one tenant, no keys) feedback is shared. A call the
caller's own input broke (``bad_request``) says nothing about the model and is not learned.

State: the bandit, an ``AnswerBook`` of recent answers (run id -> question type and model, for
feedback) and the last routing decisions (for monitoring, behind a lock). The bandit and the
answers are shared by replicas when Redis is (``shared_state.routing_stats``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from policy.answer_book import Answer, AnswerBook, MemoryAnswerBook
from policy.bandit import ModelBandit, personal_arms, rank_priors
from policy.classifier import Classification, QuestionType
from vocabulary import GEMINI, GPT4, LOCAL, OPENAI, Outcome, cause_of
from vocabulary.records import CallRecord
from vocabulary.run_metadata import ROUTING, USER_ID

# Preference per question type, best first: the bandit's starting point. Strong models for code,
# maths and reasoning; the cheap local one for small talk, where any model does.
PREFERENCES: dict[str, tuple[str, ...]] = {
    QuestionType.CODE: (GPT4, OPENAI, GEMINI, LOCAL),
    QuestionType.MATH: (GPT4, GEMINI, OPENAI, LOCAL),
    QuestionType.REASONING: (GPT4, GEMINI, OPENAI, LOCAL),
    QuestionType.CREATIVE: (GEMINI, OPENAI, GPT4, LOCAL),
    QuestionType.FACTUAL: (OPENAI, GEMINI, GPT4, LOCAL),
    QuestionType.SMALLTALK: (LOCAL, OPENAI, GEMINI, GPT4),
}
PRIORS = {kind: rank_priors(order) for kind, order in PREFERENCES.items()}
UNRANKED_PRIOR = 0.4


def prior_of(kind: str, model: str) -> float:
    return PRIORS[kind].get(model, UNRANKED_PRIOR)


@dataclass(frozen=True)
class RewardModel:
    """How a finished call scores: 1 for an answer, less up to ``latency_penalty`` as it nears
    ``slow_s`` and up to ``cost_penalty`` as its cost nears ``costly_usd``; 0 for an error."""

    slow_s: float = 10.0
    latency_penalty: float = 0.3
    costly_usd: Decimal = Decimal("0.01")
    cost_penalty: float = 0.2
    feedback_weight: float = 3.0

    def of_call(self, record: CallRecord) -> float | None:
        cause = cause_of(record.cause)
        if record.outcome in (Outcome.CANCELLED, Outcome.CACHED) or (cause is not None and cause.is_callers_fault):
            return None  # the client left, the cache answered, or its own input failed: says nothing of the model
        if record.outcome != Outcome.OK:
            return 0.0
        slowness = min(1.0, record.duration_s / self.slow_s)
        cost = min(Decimal(1), (record.cost_usd or Decimal(0)) / self.costly_usd)
        return 1.0 - self.latency_penalty * slowness - self.cost_penalty * float(cost)


@dataclass(frozen=True)
class RouteChoice:
    model: str
    reason: str


class AdaptiveRouter:
    def __init__(
        self,
        bandit: ModelBandit,
        available: Collection[str],
        *,
        rewards: RewardModel | None = None,
        answers: AnswerBook | None = None,
        recent: int = 200,
    ):
        self.bandit = bandit
        self.available = frozenset(available)
        self.rewards = rewards or RewardModel()
        self.answers = answers or MemoryAnswerBook()
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self._lock = threading.Lock()

    def choose(self, question: Classification, allowed: Sequence[str], *, tenant: str | None = None) -> RouteChoice:
        """The model for ``question`` among ``allowed``, preferring configured ones; a ``tenant``'s
        own feedback counts for its questions."""
        kind = str(question.type)
        candidates = [m for m in allowed if m in self.available] or list(allowed)
        priors = {m: prior_of(kind, m) for m in candidates}
        choice = self.bandit.choose(kind, priors, personal=personal_arms(kind, tenant) if tenant else None)
        ranked = ", ".join(f"{m} {v:.2f}" for m, v in sorted(choice.estimates.items(), key=lambda kv: -kv[1]))
        how = "exploring another model" if choice.explored else "best estimated reward"
        return RouteChoice(choice.model, f"{question.reason()}; {how} for {kind} ({ranked})")

    def remember(self, decision: dict[str, Any]) -> None:
        """Keep a routing decision for ``recent()`` (monitoring and the dashboard)."""
        with self._lock:
            self._recent.append(decision)

    def observe(self, record: CallRecord) -> None:
        """Call-record listener: learn from each call of a classified question."""
        routing = record.metadata.get(ROUTING)
        if not isinstance(routing, dict) or not record.alternative:
            return
        kind = str(routing.get("question_type", ""))
        if kind not in PRIORS:
            return
        reward = self.rewards.of_call(record)
        if reward is not None:
            self.bandit.observe(kind, record.alternative, reward, prior=prior_of(kind, record.alternative))
        # A cached answer is the model's answer too: a person may rate it, under its own run id.
        if record.outcome in (Outcome.OK, Outcome.CACHED) and record.root_run_id:
            user = record.metadata.get(USER_ID)
            answer = Answer(kind, record.alternative, record.model, None if user is None else str(user))
            self.answers.remember(record.root_run_id, answer)

    async def feedback(self, run_id: str, score: float, *, user_id: str | None = None) -> dict[str, Any]:
        """Learn a person's ``score`` (0 to 1) for the answer of run ``run_id``, once. With a
        ``user_id`` (a keyed caller), only that user's answers can be rated, and the verdict is
        learned for that user's routing alone. Raises ``UnknownRun`` or ``AlreadyRated``."""
        answer = await self.answers.claim(run_id, user_id)
        prior = prior_of(answer.question_type, answer.alternative)
        kind = personal_arms(answer.question_type, user_id) if user_id else answer.question_type
        self.bandit.observe(kind, answer.alternative, score, weight=self.rewards.feedback_weight, prior=prior)
        return {"question_type": answer.question_type, "alternative": answer.alternative, "model": answer.model}

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self._recent))

    def snapshot(self) -> dict[str, Any]:
        return {
            "arms": self.bandit.snapshot(),
            "preferences": {str(kind): list(order) for kind, order in PREFERENCES.items()},
            "available": sorted(self.available),
            "exploration": self.bandit.exploration,
            "recent": self.recent()[:50],
        }
