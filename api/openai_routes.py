"""The OpenAI-compatible door: ``POST /v1/chat/completions``, ``GET /v1/models`` and
``GET /v1/models/{id}``, so any OpenAI SDK (and LangChain's ``ChatOpenAI``) can use the ladders by
changing its base URL.

It is a second door onto the same server, not a second server: the same keys (``Authorization:
Bearer``) and tiers, the same admission against the caller's limits, the same run metadata
(``api.config_guard.stamped_metadata``, with ``door: openai``), the same chains (the LangServe
routes' ladders, taking the client's messages as they are) and the same monitoring callbacks.
``model`` names a model alternative (its ladder falls back to the local model, as /chat does; ``auto``
lets the router pick) or a ladder route (``fallback``, ``quality``). ``tools`` and
``response_format`` go to the rungs whose model can use them; the others are skipped, and a
request no model it may use could answer is a 400. Errors leave in OpenAI's envelope
(``api.openai_errors``).

A stream ends with ``data: [DONE]`` only after a complete answer; one that breaks after text was
sent ends with an error event instead, so no client takes half an answer for a whole one.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.runnables import Runnable, RunnableConfig

from api.cache_stamp import cache_stamp
from api.client_metadata import check_client_metadata
from api.config_guard import stamped_metadata
from api.context import current_request_id, interrupted_body
from api.errors import AsciiJSONResponse
from api.openai_errors import openai_error
from api.openai_schema import ChatCompletionRequest, parse_request, request_body_openapi
from caching.cache_switch import CacheSwitch
from chains.serving_report import current_serving_report
from errors import ModelNotFound, RequestError, StreamInterrupted, TooLarge
from policy.budget_book import BudgetBook
from policy.keys import Caller
from policy.limits import CallerLimits, estimate_prompt_tokens
from policy.request_policy import Access, check_model
from vocabulary import AUTO, LOCAL, MODEL_ID, TEMPERATURE_ID
from vocabulary.models import TOOLS
from vocabulary.run_metadata import NEEDS, OPENAI_DOOR, RESPONSE_CACHE, ROOT_RUN_ID, USER_ID

logger = logging.getLogger("llm_server.openai")

CHAT = "chat"  # the chain behind every model alternative's name
OWNER = "llm-fallback-server"
_FINISH_REASONS = {"max_tokens": "length", "length": "length", "safety": "content_filter"}


@dataclass(frozen=True)
class DoorOptions:
    """``ladders``: each ladder route's alternatives, to list it for a tier that may use one;
    ``alternatives``: every alternative served, with what it can do beyond text."""

    ladders: Mapping[str, Sequence[str]]
    max_prompt_chars: int
    max_metadata_bytes: int
    alternatives: Mapping[str, frozenset[str]]


def offered_models(caller: Caller, options: DoorOptions) -> list[str]:
    """The ``model`` names this caller may send: its tier's alternatives, ``auto``, and each ladder
    with at least one rung the tier may use."""
    models = [alternative for alternative in options.alternatives if caller.tier.allows(alternative)]
    usable = [name for name, rungs in options.ladders.items() if any(caller.tier.allows(alt) for alt in rungs)]
    return [*models, AUTO, *usable]


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": OWNER}


def _finish_reason(value: Any) -> str:
    reason = str(value or "stop").lower()
    return _FINISH_REASONS.get(reason, reason if reason in ("stop", "content_filter", "tool_calls") else "stop")


def _usage(usage: UsageMetadata | None) -> dict[str, Any]:
    usage = usage or UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)
    cached = (usage.get("input_token_details") or {}).get("cache_read", 0)
    reasoning = (usage.get("output_token_details") or {}).get("reasoning", 0)
    return {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _request_usage(run_id: str, answer: UsageMetadata | None) -> dict[str, Any]:
    """What the request's model calls used, failed and broken ones included (what it is billed
    for, as on the LangServe routes); the answer's own usage where no report was kept."""
    report = current_serving_report()
    used = report.usage.get(run_id) if report is not None else None
    if used is None:
        return _usage(answer)
    return {
        "prompt_tokens": used.input_tokens,
        "completion_tokens": used.output_tokens,
        "total_tokens": used.input_tokens + used.output_tokens,
        "prompt_tokens_details": {"cached_tokens": used.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": used.reasoning_tokens},
    }


def _served_model(fallback: str) -> str:
    report = current_serving_report()
    if report is not None and report.served:
        return report.served[-1].model
    if report is not None and report.streaming is not None:
        return report.streaming.model
    return fallback


@dataclass(frozen=True)
class _Run:
    """One request, ready to run: the chain, its input, config and options."""

    chain: Runnable[Any, Any]
    messages: list[BaseMessage]
    config: RunnableConfig
    options: dict[str, Any]
    run_id: str
    asked: str  # the model name the client sent


def openai_router(
    chains: Mapping[str, Runnable[Any, Any]],
    handlers: Sequence[BaseCallbackHandler],
    limits: CallerLimits,
    options: DoorOptions,
    budgets: BudgetBook | None = None,
    cache: CacheSwitch | None = None,
) -> APIRouter:
    """``budgets``: each request is admitted against the caller's money budgets before it runs;
    ``cache``: which requests the response cache serves (stamped as ``RESPONSE_CACHE``)."""
    api = APIRouter(prefix="/v1", tags=["openai"])

    def prepare(request: Request, body: ChatCompletionRequest) -> tuple[_Run, Caller]:
        caller: Caller = request.state.caller
        offered = offered_models(caller, options)
        sent: dict[str, Any] = {}
        if body.temperature is not None:
            sent[TEMPERATURE_ID] = body.temperature
        if body.model in (*options.alternatives, AUTO):
            route, sent[MODEL_ID] = CHAT, body.model
        elif body.model in options.ladders:
            route = body.model
        else:
            raise ModelNotFound(
                f"model: no model {body.model!r} here; you may use {', '.join(offered)} (GET /v1/models)",
                details={"parameter": "model", "allowed": offered},
            )
        access = Access.of_tier(caller.tier_name, caller.tier, sent)
        check_model(access, sent.get(MODEL_ID))
        needs = body.needs()
        if needs:
            _check_capable(needs, _candidates(route, body.model, caller, options), body, options.alternatives)
        chars = body.text_chars()
        if chars > options.max_prompt_chars:
            raise TooLarge(
                f"the messages hold {chars} characters; the limit is {options.max_prompt_chars} "
                "(LLM_SERVER_MAX_PROMPT_CHARS): shorten the conversation",
                details={"limit_chars": options.max_prompt_chars},
            )
        client_metadata: dict[str, Any] = dict(body.metadata or {})
        if body.user is not None:
            client_metadata[USER_ID] = body.user  # OpenAI's end-user id: the client's label, as on /chat
        check_client_metadata(None, client_metadata, max_bytes=options.max_metadata_bytes)
        run_id = uuid.uuid4()
        metadata = stamped_metadata(route, caller, access, client_metadata, OPENAI_DOOR)
        if needs:
            metadata[NEEDS] = sorted(needs)
        messages = body.langchain_messages()
        stamp = cache_stamp(cache, caller, request, estimate_prompt_tokens("\n".join(m.text for m in messages)))
        if stamp is not None:
            metadata[RESPONSE_CACHE] = stamp
        config: RunnableConfig = {
            "run_id": run_id,
            "run_name": route,
            "callbacks": list(handlers),
            "configurable": sent,
            "metadata": {**metadata, ROOT_RUN_ID: str(run_id)},
        }
        run = _Run(chains[route], messages, config, body.generation_options(), str(run_id), body.model)
        return run, caller

    @api.post("/chat/completions", response_model=None, openapi_extra=request_body_openapi())
    async def chat_completions(request: Request) -> AsciiJSONResponse | StreamingResponse:
        try:
            raw = await request.json()
        except (ValueError, RecursionError) as unreadable:
            raise RequestError(f"the request body must be a JSON object in UTF-8 ({unreadable})") from None
        body = parse_request(raw)
        run, caller = prepare(request, body)
        text = "\n".join(message.text for message in run.messages)
        if budgets is not None and budgets.enabled:
            await budgets.admit(run.config.get("metadata") or {})
        await limits.admit(caller, tokens=estimate_prompt_tokens(text), request_id=current_request_id())
        created = int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await _stream(run, created, include_usage)
        message = await run.chain.ainvoke(run.messages, run.config, **run.options)
        answer = {
            "id": run.run_id,
            "object": "chat.completion",
            "created": created,
            "model": _served_model(run.asked),
            "choices": [
                {
                    "index": 0,
                    "message": _answer_message(message),
                    "finish_reason": "tool_calls"
                    if message.tool_calls
                    else _finish_reason(message.response_metadata.get("finish_reason")),
                    "logprobs": None,
                }
            ],
            "usage": _request_usage(run.run_id, message.usage_metadata),
            "system_fingerprint": None,
        }
        return AsciiJSONResponse(answer)

    @api.get("/models")
    async def list_models(request: Request) -> dict[str, Any]:
        models = offered_models(request.state.caller, options)
        return {"object": "list", "data": [_model_card(name) for name in models]}

    @api.get("/models/{model}")
    async def get_model(request: Request, model: str) -> dict[str, Any]:
        offered = offered_models(request.state.caller, options)
        if model not in offered:
            raise ModelNotFound(
                f"no model {model!r} for you here; the models you may use are {', '.join(offered)}",
                details={"parameter": "model", "allowed": offered},
            )
        return _model_card(model)

    return api


async def _stream(run: _Run, created: int, include_usage: bool) -> StreamingResponse:
    """The answer as OpenAI's ``chat.completion.chunk`` events. The first chunk is awaited before
    the response starts, so a request no rung could answer still gets its real status (503)."""
    chunks = aiter(run.chain.astream(run.messages, run.config, **run.options))
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = None
    model = _served_model(run.asked)

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        body = {"id": run.run_id, "object": "chat.completion.chunk", "created": created, "model": model}
        body.update(choices=[choice], **extra)
        if include_usage:
            body.setdefault("usage", None)
        return b"data: " + json.dumps(body, ensure_ascii=True).encode("ascii") + b"\n\n"

    def last_event(**fields: Any) -> bytes:
        """A chunk with no choices, after the finish reason: OpenAI's usage chunk, or ours."""
        body = {"id": run.run_id, "object": "chat.completion.chunk", "created": created, "model": model}
        body.update(choices=[], **fields)
        return b"data: " + json.dumps(body, ensure_ascii=True).encode("ascii") + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        usage: UsageMetadata | None = None
        finish: Any = None
        called = False
        try:
            yield event({"role": "assistant", "content": ""})
            pending = [first] if first is not None else []
            while True:
                chunk = pending.pop() if pending else await anext(chunks, None)
                if chunk is None:
                    break
                if chunk.usage_metadata:
                    usage = add_usage(usage, chunk.usage_metadata)
                finish = chunk.response_metadata.get("finish_reason") or finish
                if chunk.text:
                    yield event({"content": chunk.text})
                if chunk.tool_call_chunks:
                    called = True
                    yield event({"tool_calls": [_tool_call_delta(piece) for piece in chunk.tool_call_chunks]})
        except StreamInterrupted as broken:
            yield _error_event(502, {**interrupted_body(broken), "provenance": _provenance(run)})
            return
        except RequestError as refused:
            yield _error_event(refused.status, {"error": refused.code, "message": refused.message})
            return
        except Exception:
            logger.exception("request %s: the stream failed", current_request_id())
            message = "the server failed unexpectedly; quote the request id when reporting it"
            yield _error_event(500, {"error": "internal_error", "message": message, "request_id": current_request_id()})
            return
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        yield event({}, "tool_calls" if called else _finish_reason(finish))
        # The last chunk before [DONE] says how the answer came to be (one model, or continued by
        # another after a break); it is OpenAI's usage chunk when the client asked for one.
        told = {"usage": _request_usage(run.run_id, usage)} if include_usage else {}
        yield last_event(**told, provenance=_provenance(run))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _provenance(run: _Run) -> dict[str, Any]:
    report = current_serving_report()
    told = report.provenance_for(run.run_id) if report is not None else None
    return told or {"outcome": "complete", "contributors": [], "continued": []}


def _error_event(status: int, body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(openai_error(status, body), ensure_ascii=True).encode("ascii") + b"\n\n"


def _candidates(route: str, model: str, caller: Caller, options: DoorOptions) -> list[str]:
    """The alternatives that could answer this request: the named one and its local floor, the
    tier's models for ``auto``, or the ladder's rungs; those above the caller's tier left out."""
    if route == CHAT and model == AUTO:
        names: Sequence[str] = list(options.alternatives)
    elif route == CHAT:
        names = [model, LOCAL]
    else:
        names = options.ladders[route]
    return [name for name in names if caller.tier.allows(name)]


def _check_capable(
    needs: frozenset[str],
    candidates: Sequence[str],
    body: ChatCompletionRequest,
    capabilities: Mapping[str, frozenset[str]],
) -> None:
    """A 400 when no model this request may use can do what it needs (tools, structured output)."""
    if any(not needs - capabilities[name] for name in candidates):
        return
    able = [name for name, can in capabilities.items() if not needs - can]
    field = "tools" if TOOLS in needs else "response_format"
    raise RequestError(
        f"{field}: no model that model={body.model!r} may use can do {', '.join(sorted(needs))}; "
        f"these can: {', '.join(able)}",
        details={"parameter": field, "able": able},
    )


def _answer_message(message: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"role": "assistant", "content": message.text or None, "refusal": None}
    if message.tool_calls:
        answer["tool_calls"] = [
            {
                "id": call.get("id") or f"call_{n}",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
            for n, call in enumerate(message.tool_calls)
        ]
    elif answer["content"] is None:
        answer["content"] = ""
    return answer


def _tool_call_delta(piece: Any) -> dict[str, Any]:
    """One streamed piece of a tool call, as OpenAI streams it: its id, type and name come once,
    with the first piece; the arguments' JSON in pieces."""
    delta: dict[str, Any] = {"index": piece.get("index") or 0, "function": {"arguments": piece.get("args") or ""}}
    if piece.get("id"):
        delta["id"] = piece["id"]
        delta["type"] = "function"
    if piece.get("name"):
        delta["function"]["name"] = piece["name"]
    return delta
