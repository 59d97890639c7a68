"""``cache_stamp``: the response cache's directive for one run, as both doors stamp it in the run's
metadata (``RESPONSE_CACHE``): the server's switch (``caching.cache_switch``) applied to the
caller's tier and key and to the client's ``Cache-Control`` header; None when not cached."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from caching.cache_switch import CacheSwitch
from policy.keys import Caller
from policy.limits import estimate_prompt_tokens


def cache_stamp(
    switch: CacheSwitch | None, caller: Caller, request: Request, reserved_tokens: int
) -> dict[str, Any] | None:
    """``reserved_tokens``: what the run's admission reserved, given back to the key on a hit."""
    if switch is None:
        return None
    directive = switch.decide(
        tier=caller.tier_name,
        key_id=caller.key_id,
        key_cache=caller.cache,
        cache_control=request.headers.get("cache-control"),
        reserved_tokens=reserved_tokens,
    )
    return None if directive is None else directive.as_metadata()


def reserved_share(body: Any, index: int) -> int:
    """The prompt tokens ``api.body_guard`` reserved for run ``index`` of a LangServe request: its
    own question's, or, when one config serves every input of a batch, the batch's average."""
    if not isinstance(body, dict):
        return 0
    inputs = body["inputs"] if isinstance(body.get("inputs"), list) else [body.get("input")]
    questions = [item.get("question") if isinstance(item, dict) else item for item in inputs]
    tokens = [estimate_prompt_tokens(q) if isinstance(q, str) else 0 for q in questions]
    if not tokens:
        return 0
    if isinstance(body.get("config"), list) and index < len(tokens):
        return tokens[index]
    return sum(tokens) // len(tokens)
