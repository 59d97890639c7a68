"""``GET /faults`` and ``PUT /faults``: see and change fault injection while the server runs, so
an operator (or the dashboard's fault panel) can rehearse an outage and watch the fallbacks,
breakers and alerts react. Both are for admin keys only; changing it is allowed by
``LLM_SERVER_FAULT_CONTROL`` as well (by default: only while the server runs open on localhost,
never with API keys)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request

from api.roles import ADMIN_ONLY
from errors import RequestError
from resilience.faults import FaultPlan, FaultSpec

logger = logging.getLogger("llm_server.faults")


def faults_router(plan: FaultPlan, alternatives: Sequence[str], *, control: bool) -> APIRouter:
    api = APIRouter(dependencies=ADMIN_ONLY)

    def current() -> dict[str, Any]:
        return {"faults": {name: spec.model_dump() for name, spec in plan.specs.items()}, "control": control}

    @api.get("/faults", tags=["operations"])
    async def show() -> dict[str, Any]:
        """The faults injected now, by alternative, and whether they may be changed here."""
        return current()

    @api.put("/faults", tags=["operations"])
    async def change(faults: dict[str, FaultSpec], request: Request) -> dict[str, Any]:
        """Replace every injected fault: ``{"openai": {"kind": "status", "status": 503}}``; ``{}`` ends them."""
        if not control:
            raise RequestError(
                "fault injection cannot be changed on this server; an operator can allow it with "
                "LLM_SERVER_FAULT_CONTROL=true",
                status=403,
            )
        unknown = sorted(set(faults) - set(alternatives))
        if unknown:
            raise RequestError(f"no alternatives {unknown}; faults apply to {', '.join(alternatives)}")
        plan.replace(faults)
        logger.warning("fault injection changed by %s: %s", request.state.caller.user_id, current()["faults"] or "off")
        return current()

    return api
