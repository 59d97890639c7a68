"""Which rung served a request, or why none could: reported to whoever is hosting the chain.

A host opens ``collect_serving_report()`` around a request; ladders running inside it (in any task or
thread that inherited the context) append to the same ``ServingReport`` object. Outside such a block
reporting is a no-op, so chains run anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from errors import AllRungsFailed, RequestError, StreamInterrupted

Failure = AllRungsFailed | RequestError | StreamInterrupted
_F = TypeVar("_F", AllRungsFailed, RequestError, StreamInterrupted)


@dataclass(frozen=True)
class Served:
    ladder: str
    rung: int
    alternative: str
    model: str


@dataclass
class ServingReport:
    served: list[Served] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_served(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def add_failure(self, failure: Failure) -> None:
        with self._lock:
            self.failures.append(failure)


_current: ContextVar[ServingReport | None] = ContextVar("ladder_outcomes", default=None)


@contextmanager
def collect_serving_report() -> Iterator[ServingReport]:
    outcomes = ServingReport()
    token = _current.set(outcomes)
    try:
        yield outcomes
    finally:
        _current.reset(token)


def current_serving_report() -> ServingReport | None:
    return _current.get()


def report_served(served: Served) -> None:
    """Tell the host, if any, which rung answered."""
    outcomes = _current.get()
    if outcomes is not None:
        outcomes.add_served(served)


def report_failure(failure: _F) -> _F:
    """Tell the host, if any, why the request failed; returns ``failure``, to raise."""
    outcomes = _current.get()
    if outcomes is not None:
        outcomes.add_failure(failure)
    return failure
