"""``RedisAnswerStore``: the response cache's answers in Redis, so every replica serves what any
one of them kept: one string key per answer, ``SET`` with ``EX`` (Redis drops it at its expiry).

While Redis is away (``RedisLink.attempt`` returns ``DOWN``) a lookup is a miss and an answer is
not kept: the request gets a fresh answer, never an error, and nothing is queued for later.
"""

from __future__ import annotations

import json
import math

from caching.answer_store import StoredAnswer
from shared_state.link import Down, RedisLink

PREFIX = "llm-server:cached-answer:"


class RedisAnswerStore:
    def __init__(self, link: RedisLink):
        self.link = link

    async def get(self, key: str, now: float) -> StoredAnswer | None:
        raw = await self.link.attempt(lambda r: r.get(PREFIX + key))
        if isinstance(raw, Down) or raw is None:
            return None
        try:
            data = json.loads(raw)
            answer = StoredAnswer(str(data["payload"]), float(data["stored_at"]), float(data["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None
        # Redis expires keys by its own clock; the cache's clock has the last word.
        return answer if answer.expires_at > now else None

    async def put(self, key: str, answer: StoredAnswer) -> None:
        seconds = math.ceil(answer.expires_at - answer.stored_at)
        if seconds <= 0:
            return
        value = json.dumps(
            {"payload": answer.payload, "stored_at": answer.stored_at, "expires_at": answer.expires_at},
            ensure_ascii=False,
        )
        await self.link.attempt(lambda r: r.set(PREFIX + key, value, ex=seconds))

    async def close(self) -> None:
        """Nothing of its own to close: the link is the shared state's."""
