"""Which rung served a request, or why none could, and what its model calls used: reported to
whoever is hosting the chain.

A host opens ``collect_serving_report()`` around a request; ladders running inside it (in any task or
thread that inherited the context) append to the same ``ServingReport`` object, and so does the
call recorder's listener ``report_call`` (tokens and cost per root run). Outside such a block
reporting is a no-op, so chains run anywhere.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TypeVar

from errors import AllRungsFailed, RequestError, StreamInterrupted
from vocabulary import Outcome
from vocabulary.records import CallRecord

Failure = AllRungsFailed | RequestError | StreamInterrupted
_F = TypeVar("_F", AllRungsFailed, RequestError, StreamInterrupted)


@dataclass(frozen=True)
class Served:
    ladder: str
    rung: int
    alternative: str
    model: str
    tries: int = 1  # model calls this ladder made for the answer, retries and failed rungs included
    run_id: str | None = None  # the root run it answered (a batch has one per item)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "alternative": self.alternative, "ladder": self.ladder, "rung": self.rung,
                "attempts": self.tries}  # fmt: skip


@dataclass
class RunUsage:
    """What one root run's model calls used, failed attempts included: what it is billed for."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None  # None while no call was priced

    def add(self, record: CallRecord) -> None:
        self.calls += record.outcome != Outcome.CACHED  # an answer from the response cache called no model
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.cached_input_tokens += record.cached_input_tokens
        self.reasoning_tokens += record.reasoning_tokens
        if record.cost_usd is not None:
            self.cost_usd = (self.cost_usd or Decimal(0)) + record.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
        }


@dataclass(frozen=True)
class Contribution:
    """One rung's part of a streamed answer: characters ``start`` to ``end``. ``form``: how it was
    asked to continue the answer (None: it began it); ``broke``: the cause that cut its stream
    short (None: it finished the answer); ``usage``: its model call's, from the call's record."""

    served: Served
    start: int
    end: int
    form: str | None = None
    broke: str | None = None
    dropped: int = 0  # characters of its stream that repeated the answer so far
    usage: RunUsage | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.served.model,
            "alternative": self.served.alternative,
            "rung": self.served.rung,
            "chars": [self.start, self.end],
            "form": self.form,
            "ended": self.broke or "finished",
            "repeat_dropped_chars": self.dropped,
            "usage": self.usage.as_dict() if self.usage is not None else None,
        }


def provenance(contributions: list[Contribution]) -> dict[str, Any]:
    """How a streamed answer came to be: ``complete`` from one model, ``continued`` (who took over
    from whom, at which character), or ``interrupted`` (its last part broke and nobody went on)."""
    last = contributions[-1]
    outcome = "interrupted" if last.broke else "continued" if len(contributions) > 1 else "complete"
    handovers = [
        {"from": before.served.model, "to": after.served.model, "at": after.start, "cause": before.broke}
        for before, after in itertools.pairwise(contributions)
    ]
    return {"outcome": outcome, "contributors": [c.as_dict() for c in contributions], "continued": handovers}


@dataclass
class ServingReport:
    served: list[Served] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    streaming: Served | None = None  # the rung whose stream reached the client, while it streams
    usage: dict[str | None, RunUsage] = field(default_factory=dict)  # by root run id
    contributions: list[Contribution] = field(default_factory=list)  # of streamed answers, in order
    downgraded: list[str] = field(default_factory=list)  # budgets that moved the request to cheaper rungs
    cache: list[str] = field(default_factory=list)  # the response cache's word on each run: hit, miss, bypass
    _records: list[CallRecord] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_served(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def add_call(self, record: CallRecord) -> None:
        with self._lock:
            self.usage.setdefault(record.root_run_id, RunUsage()).add(record)
            self._records.append(record)

    def add_contribution(self, contribution: Contribution) -> None:
        """A rung's part of a streamed answer, with the usage of the call that made it: the latest
        record of that rung (a call's record is published before its error or end reaches the ladder)."""
        served = contribution.served
        with self._lock:
            for record in reversed(self._records):
                if (record.root_run_id, record.ladder, record.rung) == (served.run_id, served.ladder, served.rung):
                    usage = RunUsage()
                    usage.add(record)
                    contribution = replace(contribution, usage=usage)
                    break
            self.contributions.append(contribution)

    def provenance_for(self, run_id: str | None) -> dict[str, Any] | None:
        """``provenance`` of ``run_id``'s streamed answer (a request with one run: its only one)."""
        with self._lock:
            mine = [c for c in self.contributions if c.served.run_id == run_id]
            if not mine and len({c.served.run_id for c in self.contributions}) == 1:
                mine = list(self.contributions)
        return provenance(mine) if mine else None

    def served_for(self, run_id: str | None) -> Served | None:
        """The rung that answered ``run_id`` (a batch item), or the request's last one."""
        with self._lock:
            matching = [s for s in self.served if s.run_id == run_id] or self.served
            return matching[-1] if matching else self.streaming

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


def report_call(record: CallRecord) -> None:
    """A call-record listener: counts ``record``'s tokens and cost for the request it belongs to
    (wired by ``wiring``, so the recorder needs no knowledge of hosts)."""
    outcomes = _current.get()
    if outcomes is not None:
        outcomes.add_call(record)


def report_contribution(contribution: Contribution) -> None:
    """Tell the host, if any, which part of a streamed answer a rung made."""
    outcomes = _current.get()
    if outcomes is not None:
        outcomes.add_contribution(contribution)


def report_streaming(served: Served) -> None:
    """Tell the host, if any, which rung's stream is reaching the client (known at its first chunk,
    long before ``report_served`` at its end)."""
    outcomes = _current.get()
    if outcomes is not None:
        outcomes.streaming = served


def report_downgrade(budget: str) -> None:
    """Tell the host, if any, that ``budget`` could not cover a rung, so a cheaper one answers."""
    outcomes = _current.get()
    if outcomes is not None and budget not in outcomes.downgraded:
        outcomes.downgraded.append(budget)


def report_cache(result: str) -> None:
    """Tell the host, if any, what the response cache said: ``hit``, ``miss`` or ``bypass``."""
    outcomes = _current.get()
    if outcomes is not None:
        with outcomes._lock:
            outcomes.cache.append(result)


def report_failure(failure: _F) -> _F:
    """Tell the host, if any, why the request failed; returns ``failure``, to raise."""
    outcomes = _current.get()
    if outcomes is not None:
        outcomes.add_failure(failure)
    return failure
