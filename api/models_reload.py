"""``POST /models/reload``: read the models file again without a restart (admin keys only), as
``SIGHUP`` does. A file that does not validate, or that changes a ladder, is refused with 409 and
the running configuration kept (and alerted); see ``wiring.server_parts.ServerParts.reload_models``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from api.roles import ADMIN_ONLY
from errors import ConfigurationError, ModelsFileRefused

Reload = Callable[[], dict[str, list[str]]]


def models_reload_router(reload: Reload) -> APIRouter:
    api = APIRouter(dependencies=ADMIN_ONLY)

    @api.post("/models/reload", tags=["operations"])
    async def reload_models() -> dict[str, Any]:
        """Serve the models file's deployments from now on; answers them by alternative."""
        try:
            served = reload()
        except ConfigurationError as refused:
            raise ModelsFileRefused(f"{refused}; fix the file and reload again") from None
        return {"reloaded": True, "deployments": served}

    return api
