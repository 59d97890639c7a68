"""``cache_key``: the response cache's key of one request, a SHA-256 over canonical JSON of
everything that shapes its answer: the door (LangServe answers text, the OpenAI door a message),
the route and ladder (which names the alternative on /chat), the scope (whose cache) and tier (a
shared cache must not hand one tier the answer of a model only a higher one may use), the full
messages (the prompt template, so the prompt style and the answer's language, is in them), the
resolved configurable values (model, prompt style, temperature) and the generation options
(max_tokens, top_p, seed, stop, tools, response_format ...).

Canonical: keys sorted, no whitespace, and a whole float written as an int, so ``1`` and ``1.0``
(the same temperature) give one key. A value with no JSON form is written by its type and
``repr``: at worst a miss, never one request's answer for another's."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel

_EXACT_INT = 2**53  # floats this large or more are not written as ints: they would round


@dataclass(frozen=True)
class KeyParts:
    door: str
    route: str
    ladder: str
    scope: str
    tier: str
    messages: Sequence[BaseMessage]
    configurable: Mapping[str, Any]
    options: Mapping[str, Any]


def cache_key(parts: KeyParts) -> str:
    document = {
        "door": parts.door,
        "route": parts.route,
        "ladder": parts.ladder,
        "scope": parts.scope,
        "tier": parts.tier,
        "messages": [_message(message) for message in parts.messages],
        # "__"-ids are LangChain's and LangServe's bookkeeping, not the client's choices.
        "configurable": {k: v for k, v in parts.configurable.items() if not str(k).startswith("__")},
        "options": dict(parts.options),
    }
    canonical = json.dumps(_plain(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _message(message: BaseMessage) -> dict[str, Any]:
    part: dict[str, Any] = {"type": message.type, "content": message.content}
    if message.name:
        part["name"] = message.name
    calls = getattr(message, "tool_calls", None)
    if calls:
        part["tool_calls"] = [{"name": c.get("name"), "args": c.get("args"), "id": c.get("id")} for c in calls]
    call_id = getattr(message, "tool_call_id", None)
    if call_id:
        part["tool_call_id"] = call_id
    return part


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return int(value) if value.is_integer() and abs(value) < _EXACT_INT else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"))
    return f"{type(value).__qualname__}:{value!r}"
