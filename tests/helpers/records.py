"""Call records and alerts as the monitoring makes them, with every field filled in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from monitoring.alert import Alert
from vocabulary.records import CallRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def call(model: str = "m", **fields: Any) -> CallRecord:
    values: dict[str, Any] = dict(
        run_id="r", root_run_id="root", request_id="q", route="chat", ladder="fallback", rung=0,
        alternative="openai", provider="openai", model=model, started_at=T0, duration_s=1.0, first_token_s=0.1,
        input_tokens=10, output_tokens=10, cached_input_tokens=0, reasoning_tokens=0, cost_usd=Decimal("0.001"),
        outcome="ok", cause=None, error=None, prompt_chars=100, answer_chars=100,
    )  # fmt: skip
    values.update(fields)
    return CallRecord(**values)


def make_alert(state: str = "firing", severity: str = "warning", n: int = 1) -> Alert:
    return Alert(
        id=f"alert-{n}-{state}",
        rule="slow_response",
        key="slow_response:gpt-4o-mini",
        state=state,  # type: ignore[arg-type]
        severity=severity,
        message=f"gpt-4o-mini answered in 9.5 s (limit 5 s), #{n}",
        at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        labels={"model": "gpt-4o-mini", "route": "/chat"},
    )
