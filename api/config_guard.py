"""The per-request config check LangServe calls before every run (``per_req_config_modifier``).

LangServe silently drops ``configurable`` ids it does not know, so a typo ("temp" for
"llm_temperature") runs with defaults and nobody notices: the failure the seed's troubleshooting
guide describes. Here an unknown id, a non-object ``configurable`` or a temperature outside 0-2
is a 422 naming what is allowed. It also refuses a model above the caller's tier (403). What the
body holds (readable JSON, sizes, batch items) ``api.body_guard`` has checked before.

Then it stamps the server's own metadata over anything a client sent under those names: the
request id and route, who is calling (``user_id``, ``tier``, ``api_key_id``) and ``access``: the
tier's models and default and the configurable ids this client really sent (LangServe fills in
every other id with its default, so the chain could not tell them apart).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request
from langchain_core.runnables.utils import ConfigurableFieldSpec

from api.context import current_request_id
from errors import RequestError
from policy.keys import Caller
from policy.request_policy import MODEL_ID, TEMPERATURE_ID, TEMPERATURE_RANGE, Access, check_model

ConfigModifier = Callable[[dict[str, Any], Request], Awaitable[dict[str, Any]]]


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


def _client_configs(body: Any) -> list[Any]:
    config = body.get("config") if isinstance(body, dict) else None
    return config if isinstance(config, list) else [config]


def _identity(caller: Caller, sent: dict[str, Any]) -> dict[str, Any]:
    """Who called, as the server knows it. With keys, the key's owner replaces any ``user_id`` the
    client sent (kept as ``client_user_id``: a backend may pass its own users' ids); an open
    server has nobody to vouch for, so the client's ``user_id`` stands as a label."""
    if not caller.authenticated:
        return {"user_id": sent.get("user_id") or caller.user_id, "tier": caller.tier_name, "api_key_id": None}
    identity: dict[str, Any] = {"user_id": caller.user_id, "tier": caller.tier_name, "api_key_id": caller.key_id}
    if sent.get("user_id") is not None:
        identity["client_user_id"] = sent["user_id"]
    return identity


def config_guard(route: str, specs: Iterable[ConfigurableFieldSpec]) -> ConfigModifier:
    allowed = {spec.id: spec for spec in specs}

    async def modifier(config: dict[str, Any], request: Request) -> dict[str, Any]:
        # LangServe has already validated the body; read it again to see what it dropped.
        try:
            body = await request.json()
        except ValueError:
            body = None
        client_configs = _client_configs(body)
        for client_config in client_configs:
            if isinstance(client_config, dict):
                _check_configurable(route, client_config.get("configurable"), allowed)
        # LangServe calls this once per config of a batch, in order: count to know whose it is.
        index = getattr(request.state, "config_index", 0)
        request.state.config_index = index + 1
        client_config = client_configs[min(index, len(client_configs) - 1)]
        configurable = (client_config or {}).get("configurable") if isinstance(client_config, dict) else None
        caller: Caller = request.state.caller
        access = Access.of_tier(caller.tier_name, caller.tier, configurable or {})
        check_model(access, (configurable or {}).get(MODEL_ID))
        metadata = {
            **(config.get("metadata") or {}),
            "route": route,
            "request_id": current_request_id(),
            **_identity(caller, config.get("metadata") or {}),
            "access": access.as_metadata(),
        }
        if request.url.path.endswith("/batch"):
            return {**config, "metadata": metadata}
        # Name the root run ourselves, so every call record can point at the id the client gets.
        run_id = uuid.uuid4()
        return {**config, "run_id": run_id, "metadata": {**metadata, "root_run_id": str(run_id)}}

    return modifier
