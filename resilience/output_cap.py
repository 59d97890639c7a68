"""The most output tokens a model call may write, when a budget holds money for it.

The ladder opens an ``output_cap_scope`` around starting each call whose budget hold assumed a
number of output tokens; the call's guard (``providers.guard``) passes it as ``max_tokens`` when
the request names none, so no call writes more than its hold paid for. A context variable, as
for the deadline (``resilience.deadline``): LangChain hands a model's stream no run metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_cap: ContextVar[int | None] = ContextVar("output_cap", default=None)


@contextmanager
def output_cap_scope(tokens: int | None) -> Iterator[None]:
    token = _cap.set(tokens)
    try:
        yield
    finally:
        _cap.reset(token)


def current_output_cap() -> int | None:
    return _cap.get()
