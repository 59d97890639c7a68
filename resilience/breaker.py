"""``CircuitBreaker``: stop calling a model endpoint that keeps failing, probe it, come back.

    closed ──(N failures in a row, or a failure ratio over a window with enough calls)──> open
    open ──(open_s passed)──> half_open: up to ``half_open_probes`` calls may go through
    half_open ──(a probe succeeds)──> closed;  half_open ──(a probe fails)──> open again

Under concurrency, calls end out of order: a provider's errors come back in milliseconds while
its answers stream for seconds, so the first calls to end after a burst are mostly the failures
(measured by ``benchmarks/load.py``: the first 9 of 64 concurrent calls to end were its 9
failures, at a 10% failure rate). So the breaker judges calls in the order they started: each try
takes a ticket (``begin``), "N in a row" means N calls that started one after the other all
failed, and the failure ratio counts the calls still in flight as not failed (yet). Without a
ticket, a call counts as started when it ends (sequential callers).

``BreakerBoard`` keeps one breaker per endpoint (provider and model) and tells a listener about
every change (alerts, metrics, log). State lives in memory and is touched from the event loop
only. Replicas share open states through ``shared_state.breakers.BreakerSync``: a breaker can be
opened (and closed again) because another replica saw its endpoint fail.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

logger = logging.getLogger("llm_server.breakers")

_STALE_CALLS = 100_000  # a call this many tickets old is taken as lost (ended without a verdict)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    consecutive_failures: int = 5  # opens after this many failures in a row...
    failure_ratio: float = 0.5  # ...or at this failure ratio over the window...
    window_s: float = 60.0
    min_calls: int = 10  # ...once the window holds at least this many calls
    open_s: float = 30.0  # how long an open breaker skips its endpoint before probing
    half_open_probes: int = 1  # calls let through at once while half-open


@dataclass(frozen=True)
class BreakerChange:
    endpoint: str
    old: BreakerState
    new: BreakerState
    reason: str


class CircuitBreaker:
    def __init__(
        self,
        endpoint: str,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerChange], None] | None = None,
    ):
        self.endpoint = endpoint
        self.policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._in_a_row = 0
        self._window: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._window_failures = 0
        self._next_call = 0
        self._in_flight: set[int] = set()  # tickets of calls started and not ended
        self._ended: dict[int, bool] = {}  # ticket -> failed, for calls that ended with a verdict
        self._forgotten_below = 0  # tickets below this are out of every run that can still grow
        self._probes = 0
        self.last_reason = ""
        self.version = 0  # counts state changes, so a sync knows what it has published
        self.opened_elsewhere = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.policy.open_s:
            self._move(BreakerState.HALF_OPEN, f"{self.policy.open_s:g}s passed; probing")
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the endpoint now. In half-open state this takes a probe slot,
        which ``record_success``, ``record_failure`` or ``release`` gives back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self.policy.half_open_probes:
            self._probes += 1
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.policy.open_s - (self._clock() - self._opened_at))

    def begin(self) -> int:
        """A call to the endpoint starts now; pass the ticket to ``record_*`` or ``release``."""
        call = self._next_call
        self._next_call += 1
        self._in_flight.add(call)
        return call

    def record_success(self, call: int | None = None) -> None:
        self._end(call, failed=False)
        self._observe(failed=False)
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            self._reset_counts()
            self._move(BreakerState.CLOSED, "a probe succeeded")

    def record_failure(self, cause: str = "", call: int | None = None) -> None:
        call = self._end(call, failed=True)
        self._observe(failed=True)
        self._in_a_row = self._run_through(call)
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            self._open(f"a probe failed ({cause})")
            return
        if self._state is not BreakerState.CLOSED:
            return
        calls = len(self._window)
        judged = calls + len(self._in_flight)  # calls still in flight have not failed (yet)
        if self._in_a_row >= self.policy.consecutive_failures:
            self._open(f"{self._in_a_row} failures in a row, the last {cause}")
        elif calls >= self.policy.min_calls and self._window_failures / judged >= self.policy.failure_ratio:
            self._open(f"{self._window_failures} of the last {calls} calls failed, the last {cause}")

    def open_from_elsewhere(self, reason: str, remaining_s: float) -> None:
        """Another replica opened this endpoint's breaker; stay open for the time it has left."""
        if self._state is BreakerState.OPEN:
            return
        self._opened_at = self._clock() - max(0.0, self.policy.open_s - remaining_s)
        self._reset_counts()
        self._move(BreakerState.OPEN, f"opened by another replica: {reason}")
        self.opened_elsewhere = True

    def close_from_elsewhere(self) -> None:
        """The replica that opened this breaker closed it (its probe succeeded)."""
        if self.opened_elsewhere and self._state is not BreakerState.CLOSED:
            self._reset_counts()
            self._move(BreakerState.CLOSED, "closed by another replica")

    def release(self, call: int | None = None) -> None:
        """A call that proved nothing either way (the caller left, the input was bad)."""
        if call is not None:
            self._in_flight.discard(call)
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        calls = len(self._window)
        return {
            "endpoint": self.endpoint,
            "state": state.value,
            "reason": self.last_reason,
            "failures_in_a_row": self._in_a_row,
            "window_calls": calls,
            "window_failures": self._window_failures,
            "retry_in_s": round(self.retry_in(), 3),
        }

    def _end(self, call: int | None, *, failed: bool) -> int:
        """Record a call's verdict under its ticket (a new one, if it had none); forget verdicts
        too old to join a run with any call still in flight or yet to start."""
        if call is None:
            call = self.begin()
        self._in_flight.discard(call)
        self._ended[call] = failed
        oldest = min(self._in_flight, default=self._next_call)
        if self._next_call - oldest > _STALE_CALLS:  # a ticket nobody ended: stop waiting for it
            self._in_flight = {c for c in self._in_flight if self._next_call - c <= _STALE_CALLS}
            oldest = min(self._in_flight, default=self._next_call)
        # A run through any call that can still end reaches at most this far back.
        keep_from = min(call, oldest) - self.policy.consecutive_failures
        while self._forgotten_below < keep_from:
            self._ended.pop(self._forgotten_below, None)
            self._forgotten_below += 1
        return call

    def _run_through(self, call: int) -> int:
        """How many calls that started one after the other, ``call`` among them, all failed."""
        limit = self.policy.consecutive_failures
        run = 1
        for step in (-1, 1):
            neighbour = call + step
            while run < limit and self._ended.get(neighbour) is True:
                run += 1
                neighbour += step
        return run

    def _observe(self, *, failed: bool) -> None:
        now = self._clock()
        if not failed:
            self._in_a_row = 0
        self._window.append((now, failed))
        self._window_failures += failed
        horizon = now - self.policy.window_s
        while self._window and self._window[0][0] < horizon:
            _, old_failed = self._window.popleft()
            self._window_failures -= old_failed

    def _reset_counts(self) -> None:
        self._in_a_row = 0
        self._window.clear()
        self._window_failures = 0
        self._ended.clear()  # calls in flight stay in flight

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._reset_counts()
        self._move(BreakerState.OPEN, reason)

    def _move(self, new: BreakerState, reason: str) -> None:
        old, self._state, self.last_reason = self._state, new, reason
        self.opened_elsewhere = False
        if new is not BreakerState.HALF_OPEN:
            self._probes = 0
        if old is not new:
            self.version += 1
            logger.warning("circuit breaker %s: %s -> %s (%s)", self.endpoint, old.value, new.value, reason)
            if self._on_change is not None:
                self._on_change(BreakerChange(self.endpoint, old, new, reason))


class BreakerBoard:
    """One breaker per endpoint, made on first use, all with the same policy."""

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        listeners: list[Callable[[BreakerChange], None]] | None = None,
    ):
        self.policy = policy
        self._clock = clock
        self.listeners = list(listeners or [])
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, endpoint: str) -> CircuitBreaker:
        breaker = self._breakers.get(endpoint)
        if breaker is None:
            breaker = CircuitBreaker(endpoint, self.policy, clock=self._clock, on_change=self._changed)
            self._breakers[endpoint] = breaker
        return breaker

    def snapshot(self) -> list[dict[str, Any]]:
        return [self._breakers[name].snapshot() for name in sorted(self._breakers)]

    def _changed(self, change: BreakerChange) -> None:
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:  # a failing listener must not break the breaker
                logger.exception("breaker listener %r failed", listener)
