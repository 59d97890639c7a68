"""``Alert``: one notification that an alert rule started firing or was resolved, and the
``AlertSink`` protocol every destination (log, webhook, Slack, Discord, email) implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

AlertState = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Alert:
    id: str  # unique per notification
    rule: str  # e.g. "slow_response"
    key: str  # the rule's subject, e.g. "slow_response:gpt-4o-mini"; one incident per key
    state: AlertState
    severity: str  # "warning" or "critical"
    message: str  # one human sentence, no secrets
    at: datetime
    labels: dict[str, str] = field(default_factory=dict)  # model, route, ...

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "key": self.key,
            "state": self.state,
            "severity": self.severity,
            "message": self.message,
            "at": self.at.isoformat(),
            "labels": dict(self.labels),
        }

    @property
    def title(self) -> str:
        mark = "RESOLVED" if self.state == "resolved" else self.severity.upper()
        return f"[{mark}] {self.rule}: {self.message}"


class AlertSink(Protocol):
    """A destination for alerts. ``send`` raises on failure; the dispatcher retries."""

    name: str

    async def send(self, alert: Alert) -> None: ...
