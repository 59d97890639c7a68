"""``AnswerStore``: where the response cache keeps its answers, by key, until they expire.

``caching.sqlite_store.SqliteAnswerStore`` is the embedded default (one file, which the workers of
one machine share); ``shared_state.answer_store.RedisAnswerStore`` is used when ``REDIS_URL`` is
set. A store that cannot answer says so with a miss (``get`` returns None) and drops what it
cannot keep: a cache never fails a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredAnswer:
    """``payload``: the answer as JSON (``caching.cached_answer``); times are wall-clock seconds."""

    payload: str
    stored_at: float
    expires_at: float


class AnswerStore(Protocol):
    async def get(self, key: str, now: float) -> StoredAnswer | None:
        """The answer kept under ``key``, unless it expired by ``now``; None on a miss or a failure."""
        ...

    async def put(self, key: str, answer: StoredAnswer) -> None:
        """Keep ``answer`` under ``key`` until its ``expires_at`` (replacing any older one)."""
        ...

    async def close(self) -> None: ...
