"""The per-request config check LangServe calls before every run (``per_req_config_modifier``).

LangServe silently drops ``configurable`` ids it does not know, so a typo ("temp" for
"llm_temperature") runs with defaults and nobody notices: the failure the seed's troubleshooting
guide describes. Here an unknown id, a non-object ``configurable`` or a temperature outside 0-2
(``NaN`` included) is a 422 naming what is allowed, wherever the client put it: in the body or in
the config encoded in the URL (``/{route}/c/{config_hash}/...``), which LangServe merges. It also
refuses a model above the caller's tier (403), and tags or metadata too large, too deep or not
Unicode (``api.client_metadata``). What the body holds (readable JSON, sizes, batch items)
``api.body_guard`` has checked before.

Then it builds the run's metadata: the server's own fields, which the chains, the router, the
limits and monitoring decide and attribute with (the request id and route; who is calling:
``user_id``, ``tier``, ``api_key_id``; ``access``: the tier's models and default and the
configurable ids this client really sent, since LangServe fills in every other id with its
default), and the client's metadata apart, under ``client``, so nothing a client sends can stand
for one of them. ``stamp_root_run`` adds ``root_run_id`` to every run, batch items included.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.utils import ConfigurableFieldSpec
from langserve.lzstring import LZString

from api.cache_stamp import cache_stamp, reserved_share
from api.client_metadata import check_client_metadata
from api.context import current_request_id
from caching.cache_switch import CacheSwitch
from errors import RequestError, TagNotAllowed
from policy.budget_book import BudgetBook
from policy.budgets import TAG_PATTERN
from policy.keys import Caller
from policy.request_policy import Access, check_model
from vocabulary import MODEL_ID, TEMPERATURE_ID, TEMPERATURE_RANGE
from vocabulary.run_metadata import (
    ACCESS,
    API_KEY_ID,
    BUDGET_TAG,
    CLIENT,
    CLIENT_USER_ID,
    DOOR,
    LANGSERVE_DOOR,
    REQUEST_ID,
    RESPONSE_CACHE,
    ROOT_RUN_ID,
    ROUTE,
    TIER,
    USER_ID,
)

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


def _hash_config(request: Request) -> dict[str, Any]:
    """The config a client encoded in the URL (``/{route}/c/{config_hash}/invoke``), as sent.
    LangServe merges it under the body's, and validates it into a model that drops unknown ids
    and fills in defaults, so the checks must see it raw."""
    encoded = request.path_params.get("config_hash")
    if not encoded:
        return {}
    try:
        decoded = json.loads(LZString.decompressFromEncodedURIComponent(encoded) or "")
    except (ValueError, TypeError, IndexError, KeyError):
        decoded = None
    if not isinstance(decoded, dict):
        raise RequestError("the config in the URL (/c/{config_hash}/) is not LZ-string-compressed JSON of an object")
    return decoded


def _configurable_of(config: Any) -> dict[str, Any]:
    configurable = config.get("configurable") if isinstance(config, dict) else None
    return configurable if isinstance(configurable, dict) else {}


def _identity(caller: Caller, sent: dict[str, Any]) -> dict[str, Any]:
    """Who called, as the server knows it. With keys, the key's owner is the ``user_id`` (a
    ``user_id`` the client sent is kept as ``client_user_id``: a backend may pass its own users'
    ids); an open server has nobody to vouch for, so the client's ``user_id`` stands as a label."""
    if not caller.authenticated:
        label = sent.get(USER_ID)
        return {USER_ID: str(label) if label else caller.user_id, TIER: caller.tier_name, API_KEY_ID: None}
    identity: dict[str, Any] = {USER_ID: caller.user_id, TIER: caller.tier_name, API_KEY_ID: caller.key_id}
    if sent.get(USER_ID) is not None:
        identity[CLIENT_USER_ID] = sent[USER_ID]
    return identity


def budget_tag_of(caller: Caller, client_metadata: dict[str, Any]) -> str | None:
    """The budget tag the client names (``budget_tag`` in its metadata), if its key may charge it:
    a keyed caller only the tags of its key, an open server's any well-formed one."""
    tag = client_metadata.get(BUDGET_TAG)
    if tag is None:
        return None
    if not isinstance(tag, str) or not re.match(TAG_PATTERN, tag):
        raise RequestError(
            f"metadata.{BUDGET_TAG} must be a budget tag: 1 to 64 letters, digits, '.', '_' or '-'",
            details={"parameter": f"metadata.{BUDGET_TAG}"},
        )
    if caller.authenticated and tag not in caller.tags:
        allowed = sorted(caller.tags)
        raise TagNotAllowed(
            f"this API key may not charge the budget tag {tag!r}; "
            + (f"it may charge {', '.join(allowed)}" if allowed else "it may charge none (tags in the keys file)"),
            details={"allowed": allowed},
        )
    return tag


def stamped_metadata(
    route: str, caller: Caller, access: Access, client_metadata: dict[str, Any], door: str
) -> dict[str, Any]:
    """A run's metadata as the server stamps it, on either door: the route and request id, who is
    calling, what they may use, the budget tag they charge, and the client's own metadata apart,
    under ``client``."""
    metadata = {
        ROUTE: route,
        DOOR: door,
        REQUEST_ID: current_request_id(),
        **_identity(caller, client_metadata),
        ACCESS: access.as_metadata(),
        CLIENT: client_metadata,  # apart from everything the server stamps
    }
    tag = budget_tag_of(caller, client_metadata)
    if tag is not None:
        metadata[BUDGET_TAG] = tag
    return metadata


def config_guard(
    route: str,
    specs: Iterable[ConfigurableFieldSpec],
    *,
    max_metadata_bytes: int,
    budgets: BudgetBook | None = None,
    cache: CacheSwitch | None = None,
) -> ConfigModifier:
    """``budgets``: each run is admitted against the caller's money budgets before it starts;
    ``cache``: which runs the response cache serves (stamped as ``RESPONSE_CACHE``)."""
    allowed = {spec.id: spec for spec in specs}

    async def modifier(config: dict[str, Any], request: Request) -> dict[str, Any]:
        # LangServe has already validated the body and the URL's config; read both again as sent.
        try:
            body = await request.json()
        except ValueError:
            body = None
        in_url = _hash_config(request)
        client_configs = _client_configs(body)
        for client_config in (in_url, *client_configs):
            if isinstance(client_config, dict):
                _check_configurable(route, client_config.get("configurable"), allowed)
        # LangServe calls this once per config of a batch, in order: count to know whose it is.
        index = getattr(request.state, "config_index", 0)
        request.state.config_index = index + 1
        # What this run's client really set: the URL's config, then the body's over it (as LangServe merges).
        sent = {**_configurable_of(in_url), **_configurable_of(client_configs[min(index, len(client_configs) - 1)])}
        check_client_metadata(config.get("tags"), config.get("metadata"), max_bytes=max_metadata_bytes)
        caller: Caller = request.state.caller
        access = Access.of_tier(caller.tier_name, caller.tier, sent)
        check_model(access, sent.get(MODEL_ID))
        metadata = stamped_metadata(route, caller, access, dict(config.get("metadata") or {}), LANGSERVE_DOOR)
        stamp = cache_stamp(cache, caller, request, reserved_share(body, index))
        if stamp is not None:
            metadata[RESPONSE_CACHE] = stamp
        if budgets is not None and budgets.enabled:
            await budgets.admit(metadata)
        if request.url.path.endswith("/batch"):
            # LangServe names each item's run after this (``stamp_root_run`` records it).
            return {**config, "metadata": metadata}
        # Name the root run ourselves, so the run id is known before the chain starts.
        return {**config, "run_id": uuid.uuid4(), "metadata": metadata}

    return modifier


def stamp_root_run(config: RunnableConfig) -> RunnableConfig:
    """A config factory for the served chain's binding: every run, batch items included, records
    the run id its client is given as ``root_run_id``, over anything a client sent."""
    run_id = config.get("run_id")
    return {"metadata": {ROOT_RUN_ID: str(run_id)}} if run_id is not None else {}
