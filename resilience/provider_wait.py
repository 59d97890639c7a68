"""``ProviderWait``: how long one request waited for its model providers, so that the rest of its
time is the server's own work (``X-Server-Overhead-Ms`` and ``llm_server_overhead_seconds``).

The host opens a ``provider_wait_scope`` around a request; each model call's guard
(``providers.guard``) wraps every wait for its provider (the request until the first chunk, then
each next chunk, as the model's client hands it over) in ``waiting()``. Calls that wait at the same
time (a batch, a continuation) are counted once: the tally is the union of the waiting intervals,
never more than the request's own time. A context variable, as for the deadline: the scope's
tally object is shared by every task the request starts. State: one tally per request, changed
only from the event loop's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class ProviderWait:
    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._waiting = 0  # waits in progress
        self._since = 0.0  # when the current run of overlapping waits began
        self._total = 0.0  # finished runs of waits

    def begin(self) -> None:
        if self._waiting == 0:
            self._since = self._clock()
        self._waiting += 1

    def end(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._total += self._clock() - self._since

    def seconds(self) -> float:
        """Time spent waiting so far, a wait still in progress counted up to now."""
        return self._total + (self._clock() - self._since if self._waiting else 0.0)


_current: ContextVar[ProviderWait | None] = ContextVar("provider_wait", default=None)


@contextmanager
def provider_wait_scope(tally: ProviderWait) -> Iterator[ProviderWait]:
    """The provider waits of every model call started inside this block count on ``tally``."""
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)


def current_provider_wait() -> ProviderWait | None:
    """The tally of the scope this runs in (None outside one)."""
    return _current.get()


@contextmanager
def waiting() -> Iterator[None]:
    """A wait for a provider, counted on the request's tally (nothing outside a scope)."""
    tally = _current.get()
    if tally is None:
        yield
        return
    tally.begin()
    try:
        yield
    finally:
        tally.end()
