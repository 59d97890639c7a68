"""``GET /dashboard`` (the page), ``/dashboard/assets/`` (its script, styles and Chart.js) and
``GET /dashboard/data`` (everything the page shows, in one JSON snapshot it polls every two
seconds). The page and its data hold every user's calls: admin keys only (a browser asks for the
key as a password); the assets are only code, open to any key.

With tracing on and a trace UI URL template given, each recent call carries ``trace_url``, the
template filled in here with the call's own ids: the page links to it and never builds URLs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.roles import ADMIN_ONLY
from dashboard.snapshot import snapshot
from policy.adaptive_router import AdaptiveRouter
from policy.budget_book import BudgetBook
from providers.engine_client import EngineClient
from resilience.ladder_policies import LadderPolicies
from vocabulary.run_metadata import SPAN_ID, TRACE_ID
from wiring.monitoring import Monitoring

STATIC = Path(__file__).resolve().parent / "static"
RECENT_CALL_FIELDS = (
    "started_at", "request_id", "route", "alternative", "model", "rung", "outcome", "cause", "duration_s",
    "first_token_s", "total_tokens", "cost_usd", "tags",
)  # fmt: skip


# Only ids in the hex form the call recorder writes are shown or put into a URL: the records are
# stored JSON (another version's, a restored file's), not proof of what they hold.
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


def _hex_id(value: Any, shape: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and shape.fullmatch(value) else None


def _trace_url(template: str | None, trace_id: str | None, span_id: str | None) -> str | None:
    if template is None or trace_id is None or (span_id is None and "{span_id}" in template):
        return None
    return template.format(trace_id=trace_id, span_id=span_id)


def _recent_call(record: dict[str, Any], trace_ui_url: str | None = None) -> dict[str, Any]:
    metadata = record["metadata"]
    routing = metadata.get("routing") or {}
    trace_id, span_id = _hex_id(metadata.get(TRACE_ID), _TRACE_ID), _hex_id(metadata.get(SPAN_ID), _SPAN_ID)
    return {
        **{name: record[name] for name in RECENT_CALL_FIELDS},
        "user_id": metadata.get("user_id"),
        "question_type": routing.get("question_type"),
        "trace_id": trace_id,
        "span_id": span_id,
        "trace_url": _trace_url(trace_ui_url, trace_id, span_id),
    }


async def _budgets(book: BudgetBook | None) -> list[dict[str, Any]]:
    if book is None or not book.enabled:
        return []
    return [status.as_dict() for status in await book.statuses(await book.known_lines())]


def install_dashboard(
    app: FastAPI,
    suite: Monitoring,
    kit: LadderPolicies,
    router: AdaptiveRouter,
    engine: EngineClient,
    *,
    fault_control: bool,
    budgets: BudgetBook | None = None,
    trace_ui_url: str | None = None,
) -> None:
    """``trace_ui_url``: a template with ``{trace_id}`` (and ``{span_id}``), validated by the settings."""
    api = APIRouter(tags=["dashboard"], dependencies=ADMIN_ONLY)

    @api.get("/dashboard", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @api.get("/dashboard/data")
    async def data(
        window_s: float = Query(900, ge=60, le=86_400, description="How far back the charts go, in seconds."),
        model: str | None = Query(None, description="Recent calls of this model (name or alternative) only."),
        tag: str | None = Query(None, description="Recent calls with this tag only."),
        user_id: str | None = Query(None, description="Recent calls of this user only."),
    ) -> dict[str, Any]:
        """Charts, breakers, budgets, the local engine, alerts, faults, routing and recent calls, as of now."""
        now = datetime.now(UTC)
        records = await suite.store.window(now - timedelta(seconds=window_s))
        recent = await suite.store.find(model=model or None, tag=tag or None, user_id=user_id or None, limit=50)
        history = await suite.store.alerts(limit=30)
        return {
            "now": now.isoformat(),
            **snapshot(records, now=now, window_s=window_s),
            "breakers": kit.breakers.snapshot(),
            "budgets": await _budgets(budgets),
            "local_engine": await engine.status(),
            "alerts": {"firing": suite.engine.firing(), "history": [alert.as_dict() for alert in history]},
            "faults": {
                "active": {name: spec.model_dump() for name, spec in kit.faults.specs.items()},
                "control": fault_control,
            },
            "routing": router.recent()[:20],
            "recent_calls": [_recent_call(record.as_dict(), trace_ui_url) for record in recent],
        }

    app.include_router(api)
    app.mount("/dashboard/assets", StaticFiles(directory=STATIC), name="dashboard-assets")
