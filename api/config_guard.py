"""The per-request config check LangServe calls before every run (``per_req_config_modifier``).

LangServe silently drops ``configurable`` ids it does not know, so a typo ("temp" for
"llm_temperature") runs with defaults and nobody notices: the failure the seed's troubleshooting
guide describes. Here an unknown id, a non-object ``configurable`` or a temperature outside 0-2
is a 422 naming what is allowed. The check also stamps the server's own metadata (request id,
route) over anything a client sent under those names.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request
from langchain_core.runnables.utils import ConfigurableFieldSpec

from api.context import current_request_id
from errors import RequestError

ConfigModifier = Callable[[dict[str, Any], Request], Awaitable[dict[str, Any]]]

TEMPERATURE_ID = "llm_temperature"
TEMPERATURE_RANGE = (0.0, 2.0)


def _check_configurable(route: str, configurable: Any, allowed: dict[str, ConfigurableFieldSpec]) -> None:
    if configurable is None:
        return
    if not isinstance(configurable, dict):
        raise RequestError(
            f"config.configurable must be an object of ids to values; /{route} accepts {sorted(allowed)}"
        )
    unknown = sorted(set(configurable) - set(allowed))
    if unknown:
        raise RequestError(
            f"unknown configurable id(s) {unknown} for /{route}; valid ids: {sorted(allowed)}",
            details={"unknown": unknown, "allowed": sorted(allowed)},
        )
    if TEMPERATURE_ID in configurable:
        value = configurable[TEMPERATURE_ID]
        low, high = TEMPERATURE_RANGE
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise RequestError(f"{TEMPERATURE_ID} must be a number from {low:g} to {high:g}, got {value!r}")


def _client_configs(body: Any) -> Iterable[Any]:
    config = body.get("config") if isinstance(body, dict) else None
    return config if isinstance(config, list) else [config]


def config_guard(route: str, specs: Iterable[ConfigurableFieldSpec]) -> ConfigModifier:
    allowed = {spec.id: spec for spec in specs}

    async def modifier(config: dict[str, Any], request: Request) -> dict[str, Any]:
        # LangServe has already validated the body; read it again to see what it dropped.
        try:
            body = await request.json()
        except ValueError:
            body = None
        for client_config in _client_configs(body):
            if isinstance(client_config, dict):
                _check_configurable(route, client_config.get("configurable"), allowed)
        metadata = {**(config.get("metadata") or {}), "route": route, "request_id": current_request_id()}
        if request.url.path.endswith("/batch"):
            return {**config, "metadata": metadata}
        # Name the root run ourselves, so every call record can point at the id the client gets.
        run_id = uuid.uuid4()
        return {**config, "run_id": run_id, "metadata": {**metadata, "root_run_id": str(run_id)}}

    return modifier
