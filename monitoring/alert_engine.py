"""``AlertEngine``: turns rule signals into notifications, once per incident.

Each rule subject (``slow_response:gpt-4o``) is a small state machine: resolved -> firing sends
one "firing" alert, however long the condition lasts; firing -> resolved sends one "resolved"
alert. A subject that fires again within ``cooldown_s`` of its last notification stays quiet
(flapping), and so does the end of that quiet episode. State lives in memory and is touched from
the event loop only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitoring.alert import Alert
from monitoring.alert_rules import AlertRule, Signal
from vocabulary.records import CallRecord


@dataclass
class _State:
    firing: bool
    notified: bool  # whether this episode was announced (so its end is too)
    last_notified: float
    since: datetime
    signal: Signal


class AlertEngine:
    def __init__(
        self,
        rules: Sequence[AlertRule],
        notify: Callable[[Alert], None],
        *,
        cooldown_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.rules = list(rules)
        self.notify = notify
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._states: dict[str, _State] = {}

    def observe(self, record: CallRecord) -> None:
        now = self._clock()
        for rule in self.rules:
            for signal in rule.evaluate(record, now):
                self.signal(signal)

    def signal(self, signal: Signal) -> None:
        """Apply one condition reading; other parts of the server (breakers) call this too."""
        now = self._clock()
        state = self._states.get(signal.key)
        if signal.firing:
            if state is not None and state.firing:
                return
            announce = state is None or now - state.last_notified >= self.cooldown_s
            last = now if announce or state is None else state.last_notified
            self._states[signal.key] = _State(True, announce, last, self._wall_clock(), signal)
            if announce:
                self._send(signal, "firing")
        elif state is not None and state.firing:
            state.firing = False
            if state.notified:
                state.last_notified = now
                self._send(signal, "resolved", labels=state.signal.labels)

    def _send(self, signal: Signal, state: str, labels: dict[str, str] | None = None) -> None:
        alert = Alert(
            id=uuid.uuid4().hex,
            rule=signal.rule,
            key=signal.key,
            state="firing" if state == "firing" else "resolved",
            severity=signal.severity,
            message=signal.message,
            at=self._wall_clock(),
            labels=dict(labels if labels is not None else signal.labels),
        )
        self.notify(alert)

    def firing(self) -> list[dict[str, Any]]:
        """What is firing now, oldest first."""
        current = [s for s in self._states.values() if s.firing]
        return [
            {
                "rule": s.signal.rule,
                "key": s.signal.key,
                "severity": s.signal.severity,
                "message": s.signal.message,
                "since": s.since.isoformat(),
                "labels": s.signal.labels,
            }
            for s in sorted(current, key=lambda s: s.since)
        ]

    def firing_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {rule.name: 0 for rule in self.rules}
        for state in self._states.values():  # every rule seen, so one that resolved goes back to 0
            counts[state.signal.rule] = counts.get(state.signal.rule, 0) + int(state.firing)
        return counts
