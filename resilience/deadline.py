"""``Deadline``: the one time limit of a whole request, shared by every rung and retry.

The ladder starts it and opens a ``deadline_scope`` around starting each model call; the call's
guard (``providers.guard``) reads it once, when its stream starts, so a call cut short by it
fails inside its own LLM run, with cause ``timeout`` in the records, rather than being cancelled
from outside. A context variable carries it because LangChain hands a chat model's stream no run
metadata on the invoke path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline_at: ContextVar[float | None] = ContextVar("request_deadline_at", default=None)


class Deadline:
    def __init__(self, seconds: float | None, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.at = None if seconds is None else clock() + seconds

    def time_left(self) -> float | None:
        return None if self.at is None else self.at - self._clock()

    @property
    def expired(self) -> bool:
        left = self.time_left()
        return left is not None and left <= 0


@contextmanager
def deadline_scope(at: float | None) -> Iterator[None]:
    """Model calls started inside this block end by ``at`` (on the monotonic clock)."""
    token = _deadline_at.set(at)
    try:
        yield
    finally:
        _deadline_at.reset(token)


def current_deadline_at() -> float | None:
    return _deadline_at.get()
