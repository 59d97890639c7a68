"""``/health``, ``/metrics`` and the read-only ``/monitoring`` routes (calls, stats, alerts, breakers).

``/health`` is open to everyone; ``/monitoring/calls`` answers any key, with only its user's own
records unless the key is an admin's; the rest hold every user's figures: admin keys only.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.roles import ADMIN_ONLY, caller_of
from errors import RequestError
from monitoring.call_query import BadCursor, CallCursor, CallFilter
from monitoring.stats import summarize
from providers.engine_client import EngineClient
from resilience.ladder_policies import LadderPolicies
from settings import Settings
from vocabulary.outcomes import OutcomeName
from wiring.monitoring import Monitoring

MAX_WINDOW_S = 100 * 365 * 86_400  # a century: "everything" for any store this server keeps
# One page of /monitoring/calls, in bytes of JSON: four records with 950 kB of metadata each made
# a 126.5 MB answer at limit=1000. The rest is one `next` away.
MAX_CALLS_PAGE_BYTES = 5_000_000
_SINCE = Query(None, description="Only records at or after this time (ISO 8601; UTC when it names no zone).")


def _since(since: datetime | None, window_s: float | None) -> datetime | None:
    if window_s is not None:
        return datetime.now(UTC) - timedelta(seconds=window_s)
    return since


def monitoring_router(suite: Monitoring, settings: Settings, engine: EngineClient, kit: LadderPolicies) -> APIRouter:
    router = APIRouter()

    @router.get("/health", tags=["operations"])
    async def health() -> dict[str, Any]:
        local_path = settings.resolved_local_model_path()
        storage = suite.store.health()
        report = await engine.status()
        generations = report.get("generations") or {}  # empty while the engine is down
        queue = report.get("queue") or {"waiting": 0, "capacity": engine.queue_size}
        return {
            # Still serving either way (a load balancer should keep sending traffic); "degraded"
            # says monitoring records wait in memory until the file takes writes again.
            "status": "ok" if storage["writable"] else "degraded",
            "process": os.getpid(),  # which worker answered, when there are several
            "providers": {
                "openai": settings.openai_api_key is not None,
                "gemini": settings.google_api_key is not None,
                "local": bool(local_path and local_path.is_file()),
            },
            "local_queue": queue,
            "local_model": {  # the engine process's counts since its last start
                "generating": generations.get("running", False),
                "completed": generations.get("completed", 0),
                "cancelled": generations.get("cancelled", 0),  # stopped early: the client hung up
                "tokens": generations.get("tokens", 0),
            },
            "local_engine": {
                name: report.get(name)
                for name in ("state", "pid", "restarts", "last_exit", "last_exit_at", "instruction_sets")
            },
            "monitoring_storage": storage,
        }

    # Load balancers often probe with HEAD; one operation in the schema is enough.
    router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)

    @router.get("/metrics", tags=["operations"], dependencies=ADMIN_ONLY)
    async def metrics() -> Response:
        return Response(suite.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/monitoring/stats", tags=["monitoring"], dependencies=ADMIN_ONLY)
    async def stats(
        # Bounded: a window past the calendar's start (datetime.min) overflowed into a 500.
        window_s: float | None = Query(None, gt=0, le=MAX_WINDOW_S, description="Only the last this many seconds."),
        since: datetime | None = _SINCE,
    ) -> dict[str, Any]:
        start = _since(since, window_s)
        records = await suite.store.window(start)
        return {"since": start.isoformat() if start else None, **summarize(records)}

    @router.get("/monitoring/calls", tags=["monitoring"])
    async def calls(
        request: Request,
        run_id: str | None = Query(None, description="An LLM call's run id, or the run id a route returned."),
        request_id: str | None = Query(None, description="The X-Request-Id of a request."),
        model: str | None = Query(None, description="A concrete model name or an alternative key."),
        outcome: OutcomeName | None = None,
        tag: str | None = Query(None, description="A tag the client sent."),
        user_id: str | None = Query(
            None, description="The user who called (the key's owner; a label on an open server)."
        ),
        since: datetime | None = _SINCE,
        until: datetime | None = Query(None, description="Only records before this time (ISO 8601)."),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(
            None, max_length=512, description="The `next` of the previous page: the records after it."
        ),
    ) -> dict[str, Any]:
        """Call records, newest first, a page at a time (``limit`` records, at most 5 MB of JSON);
        ``next`` is the cursor of the following page, null after the last. A key that is not an
        admin's sees only its own user's records."""
        caller = caller_of(request)
        try:
            after = CallCursor.decode(cursor) if cursor else None
        except BadCursor:
            raise RequestError(
                "cursor: not a cursor this server gave out; pass the `next` of the previous page as it "
                "came, or leave cursor out for the newest records",
                details={"parameter": "cursor"},
            ) from None
        wanted = CallFilter(
            run_id=run_id, request_id=request_id, model=model, outcome=outcome, tag=tag, user_id=user_id,
            owner=None if caller.admin else caller.user_id, since=since, until=until, after=after,
        )  # fmt: skip
        page = await suite.store.page(wanted, limit=limit, max_bytes=MAX_CALLS_PAGE_BYTES)
        return {
            "calls": [record.as_dict() for record in page.records],
            "next": page.next.encode() if page.next else None,
        }

    @router.get("/monitoring/alerts", tags=["monitoring"], dependencies=ADMIN_ONLY)
    async def alerts(limit: int = Query(100, ge=1, le=1000), since: datetime | None = _SINCE) -> dict[str, Any]:
        history = await suite.store.alerts(limit=limit, since=since)
        deliveries: dict[str, list[dict[str, Any]]] = {}
        # deliveries() with no ids returns every delivery: only ask when there are alerts.
        for delivery in (await suite.store.deliveries(*(alert.id for alert in history))) if history else []:
            deliveries.setdefault(delivery.pop("alert_id"), []).append(delivery)
        return {
            "firing": suite.engine.firing(),
            "history": [{**alert.as_dict(), "deliveries": deliveries.get(alert.id, [])} for alert in history],
        }

    @router.get("/monitoring/breakers", tags=["monitoring"], dependencies=ADMIN_ONLY)
    async def breakers() -> dict[str, Any]:
        """Each remote model endpoint's circuit breaker: state, why, and when it probes again."""
        policy = kit.breakers.policy
        return {"breakers": kit.breakers.snapshot(), "policy": vars(policy)}

    return router
