"""``/health`` and the read-only ``/monitoring`` routes over the call store and alert history."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from callbacks.suite import MonitoringSuite
from providers.local_engine import LocalEngine
from settings import Settings


def monitoring_router(suite: MonitoringSuite, settings: Settings, engine: LocalEngine) -> APIRouter:
    router = APIRouter()

    @router.get("/health", tags=["operations"])
    async def health() -> dict[str, Any]:
        local_path = settings.resolved_local_model_path()
        return {
            "status": "ok",
            "providers": {
                "openai": settings.openai_api_key is not None,
                "gemini": settings.google_api_key is not None,
                "local": bool(local_path and local_path.is_file()),
            },
            "local_queue": {"waiting": engine.waiting, "capacity": engine.queue_size},
        }

    @router.get("/monitoring/stats", tags=["monitoring"])
    async def stats() -> dict[str, Any]:
        return {**suite.store.stats(), "cumulative_cost_usd": str(suite.alerts.cumulative_cost)}

    @router.get("/monitoring/calls", tags=["monitoring"])
    async def calls(
        run_id: str | None = Query(None, description="An LLM call's run id, or the run id a route returned."),
        request_id: str | None = Query(None, description="The X-Request-Id of a request."),
        model: str | None = Query(None, description="A concrete model name or an alternative key."),
        outcome: Literal["ok", "error", "cancelled"] | None = None,
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        found = suite.store.find(run_id=run_id, request_id=request_id, model=model, outcome=outcome, limit=limit)
        return {"calls": [record.as_dict() for record in found]}

    @router.get("/monitoring/alerts", tags=["monitoring"])
    async def alerts(limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        return {"alerts": [alert.as_dict() for alert in suite.history.recent(limit)]}

    return router
