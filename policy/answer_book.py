"""``AnswerBook``: which question type and model produced each recent answer, so feedback on a
run id can be credited to the right arm, once, and only by the user who got the answer.

``MemoryAnswerBook`` keeps the last ``capacity`` answers of this process; the shared one
(``shared_state.routing_stats.RedisAnswerBook``) lets feedback reach any replica.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Answer:
    question_type: str
    alternative: str
    model: str
    user_id: str | None


class UnknownRun(LookupError):
    """Feedback named a run id with no known answer (or not one of this caller's)."""


class AlreadyRated(ValueError):
    """Feedback for this answer was given before; one verdict per answer."""


class AnswerBook(Protocol):
    def remember(self, run_id: str, answer: Answer) -> None: ...

    async def claim(self, run_id: str, user_id: str | None) -> Answer:
        """The answer of ``run_id`` (of ``user_id``'s, when given), marked as rated."""
        ...


class MemoryAnswerBook:
    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._rated: set[str] = set()
        self._lock = threading.Lock()  # records may arrive from worker threads

    def remember(self, run_id: str, answer: Answer) -> None:
        with self._lock:
            self._answers[run_id] = answer
            self._answers.move_to_end(run_id)
            while len(self._answers) > self.capacity:
                old, _ = self._answers.popitem(last=False)
                self._rated.discard(old)

    async def claim(self, run_id: str, user_id: str | None) -> Answer:
        with self._lock:
            answer = self._answers.get(run_id)
            if answer is None or (user_id is not None and answer.user_id != user_id):
                raise UnknownRun(run_id)
            if run_id in self._rated:
                raise AlreadyRated(run_id)
            self._rated.add(run_id)
            return answer
