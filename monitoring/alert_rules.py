"""Alert rules: each looks at finished call records and says, per subject (a model, a ladder),
whether its condition holds now. ``AlertEngine`` turns those signals into firing and resolved
notifications. ``storage_signals`` and ``delivery_signal`` do the same for the monitoring's own
dependencies: the SQLite file and the alert destinations.

Rules with memory (error rate over a window) keep it here; they are called
from the event loop only, one record at a time. The cost threshold is ``monitoring.spend``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from monitoring.alert_dispatcher import DeliveryResult
from monitoring.call_store import WriteReport
from vocabulary import Cause, Outcome, cause_of
from vocabulary.records import CallRecord
from vocabulary.run_metadata import CONTEXT_WINDOW, PROVIDER_KEY


def _is_incident(record: CallRecord) -> bool:
    """A failure someone should hear of (``Cause.is_incident``); a cause this server does not
    know, or none, counts as one."""
    cause = cause_of(record.cause)
    return record.outcome == Outcome.ERROR and (cause is None or cause.is_incident)


def _says_nothing(record: CallRecord) -> bool:
    """A call that says nothing about a model's health: the client left, an answer from the
    response cache (no model was called), or a cause that is no incident (no key set, the caller's
    own bad input)."""
    cause = cause_of(record.cause)
    return record.outcome in (Outcome.CANCELLED, Outcome.CACHED) or (cause is not None and not cause.is_incident)


@dataclass(frozen=True)
class Signal:
    rule: str
    subject: str  # what the condition is about: a model, a ladder, "all"
    firing: bool
    message: str
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"


class AlertRule(Protocol):
    name: str

    def evaluate(self, record: CallRecord, now: float) -> Iterable[Signal]: ...


@dataclass
class PerCallThreshold:
    """Fires for a model while its calls exceed a threshold; resolves on the next call under it."""

    name: str
    threshold: float
    measure: Callable[[CallRecord], float | None]
    describe: Callable[[CallRecord, float], str]

    def evaluate(self, record: CallRecord, now: float) -> Iterable[Signal]:
        value = self.measure(record)
        if value is None:
            return []
        firing = value > self.threshold
        message = self.describe(record, value) if firing else f"{record.model} is back under {self.threshold:g}"
        return [Signal(self.name, record.model, firing, message, labels={"model": record.model})]


def slow_response(threshold_s: float) -> PerCallThreshold:
    return PerCallThreshold(
        "slow_response",
        threshold_s,
        lambda r: r.duration_s if r.outcome == Outcome.OK else None,
        lambda r, v: f"{r.model} answered in {v:.2f}s (threshold {threshold_s:g}s)",
    )


def slow_first_token(threshold_s: float) -> PerCallThreshold:
    return PerCallThreshold(
        "slow_first_token",
        threshold_s,
        lambda r: r.first_token_s if r.outcome == Outcome.OK else None,
        lambda r, v: f"{r.model} took {v:.2f}s to its first token (threshold {threshold_s:g}s)",
    )


@dataclass
class LongPrompt:
    """Fires for a model while its prompts come close to what it can take: past ``share`` of the
    context window of the deployment that ran it (its record's ``context_window``), in tokens (as
    reported, else estimated at 4 characters a token); past ``threshold_chars`` characters for a
    model whose window is not known. Resolves on the next call under it."""

    threshold_chars: int
    share: float = 0.8
    name: str = "long_prompt"

    def evaluate(self, record: CallRecord, now: float) -> Iterable[Signal]:
        if record.outcome == Outcome.CACHED:
            return []  # the prompt went to no model
        window = record.metadata.get(CONTEXT_WINDOW)
        if isinstance(window, int) and window > 0:
            tokens = record.input_tokens or math.ceil(record.prompt_chars / 4)
            firing = tokens > self.share * window
            told = f"a {tokens}-token prompt went to {record.model}, {tokens / window:.0%} of its {window}-token window"
        else:
            firing = record.prompt_chars > self.threshold_chars
            told = f"a {record.prompt_chars}-character prompt went to {record.model} (threshold {self.threshold_chars})"
        message = told if firing else f"{record.model}'s prompts are back under the threshold"
        return [Signal(self.name, record.model, firing, message, labels={"model": record.model})]


def long_prompt(threshold_chars: int, share: float = 0.8) -> LongPrompt:
    return LongPrompt(threshold_chars, share)


class LLMError:
    """Fires when a model's call fails; resolves on its next successful call."""

    name = "llm_error"

    def evaluate(self, record: CallRecord, now: float) -> Iterable[Signal]:
        if record.cause == Cause.AUTH and record.metadata.get(PROVIDER_KEY):
            return []  # one key of several refused: the key rotation's own alert (provider_key) tells
        if _is_incident(record):
            message = f"{record.model} failed ({record.cause}): {record.error}"
            return [Signal(self.name, record.model, True, message, labels={"model": record.model})]
        if record.outcome == Outcome.OK:
            return [Signal(self.name, record.model, False, f"{record.model} answers again")]
        return []


class ErrorRate:
    """Fires while a model's share of failed calls over a sliding window is at or above a rate.

    Calls are counted in one-second buckets with running totals, so each record costs O(1) and
    memory stays at most one bucket per second of window per model, whatever the traffic.

    Calls still running count too (``in_flight``): failures end sooner than answers, so at the
    start of a burst the first calls to end are the failures, and counting ended calls alone
    reads a 10% error rate as 100%."""

    name = "error_rate"

    def __init__(self, rate: float, window_s: float, min_calls: int, in_flight: Callable[[str], int] = lambda model: 0):
        self.rate, self.window_s, self.min_calls = rate, window_s, min_calls
        self.in_flight = in_flight
        self._buckets: dict[str, deque[list[float]]] = {}  # model -> [second, calls, errors]
        self._totals: dict[str, list[int]] = {}  # model -> [calls, errors] over the window

    def evaluate(self, record: CallRecord, now: float) -> Iterable[Signal]:
        if _says_nothing(record):
            return []
        buckets = self._buckets.setdefault(record.model, deque())
        totals = self._totals.setdefault(record.model, [0, 0])
        failed = int(record.outcome == Outcome.ERROR)
        second = float(int(now))
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += 1
            buckets[-1][2] += failed
        else:
            buckets.append([second, 1, failed])
        totals[0] += 1
        totals[1] += failed
        while buckets and buckets[0][0] <= now - self.window_s:
            _, calls, errors = buckets.popleft()
            totals[0] -= int(calls)
            totals[1] -= int(errors)
        calls, errors = totals
        if calls < self.min_calls:
            return []
        running = self.in_flight(record.model)
        rate = errors / (calls + running)
        message = f"{record.model}: {errors} of the last {calls} calls failed in {self.window_s:g}s ({rate:.0%}"
        message += f", counting {running} still running)" if running else ")"
        return [Signal(self.name, record.model, rate >= self.rate, message, "critical", {"model": record.model})]


class FallbackUsed:
    """Fires while a ladder answers from a fallback rung; resolves when its first choice answers."""

    name = "fallback_used"

    def evaluate(self, record: CallRecord, now: float) -> Iterable[Signal]:
        if record.outcome != Outcome.OK or record.ladder is None or record.rung is None:
            return []
        firing = record.rung > 0
        if firing:
            message = f"ladder {record.ladder} answered from fallback rung {record.rung} ({record.model})"
        else:
            message = f"ladder {record.ladder} answers from its first choice again"
        return [Signal(self.name, record.ladder, firing, message, labels={"ladder": record.ladder})]


class UnpricedModel:
    """Fires once per model that answered but has no price: its cost is unknown, not zero."""

    name = "unpriced_model"

    def evaluate(self, record: CallRecord, now: float) -> Iterable[Signal]:
        if record.outcome != Outcome.OK or record.cost_usd is not None:
            return []
        message = f"{record.model} is not in the price table; its calls are recorded with no cost"
        return [Signal(self.name, record.model, True, message, labels={"model": record.model})]


def storage_signals(report: WriteReport, where: str, max_pending: int) -> list[Signal]:
    """``storage:writes`` while the SQLite file refuses records; ``storage:dropped`` once records
    were dropped in that outage. Both resolve when a write succeeds again."""
    labels = {"path": where}
    waiting = sum(report.waiting.values())
    if report.ok:
        writes = f"monitoring records are written to {where} again"
        dropped = f"{writes}; {report.lost} records were dropped while it failed"
    else:
        writes = (
            f"cannot write monitoring records to {where}: {report.error}; {waiting} records waiting in memory "
            f"(at most {max_pending} of each kind), written once it works again"
        )
        dropped = (
            f"{report.lost} monitoring records dropped: more than {max_pending} of a kind waited to be written "
            f"to {where} ({report.error}); raise LLM_SERVER_MONITORING_MAX_PENDING or fix the file"
        )
    return [
        Signal("storage", "writes", not report.ok, writes, "critical", labels),
        Signal("storage", "dropped", not report.ok and report.lost > 0, dropped, "critical", labels),
    ]


def delivery_signal(result: DeliveryResult) -> Signal | None:
    """``alert_delivery:<sink>`` while a destination does not take alerts (they still reach the log
    and the other destinations); a delivery another replica made says nothing about this one."""
    if result.ok and not result.attempts:
        return None
    if result.ok:
        message = f"alerts reach {result.sink} again"
    else:
        message = f"alerts to {result.sink} are not getting through: {result.error} (after {result.attempts} attempts)"
    return Signal("alert_delivery", result.sink, not result.ok, message, "warning", {"sink": result.sink})
