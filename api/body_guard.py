"""``body_guard``: a dependency on the chain routes that checks what a POST body holds before
LangServe reads it (the config guard checks what its config says, later):

- a question over ``max_prompt_chars`` or a batch over ``max_batch_inputs``: 413 naming the limit;
- a body that is not JSON in UTF-8 (LangServe catches only ``JSONDecodeError``, not the
  ``UnicodeDecodeError`` of other bytes), or one nested deeper than the parser goes;
- ``"config": null`` (LangServe's shallow check lets ``None`` through, then raises ``TypeError``);
- a ``/batch`` whose ``inputs`` is not a list, or holds an item the chain's input schema rejects
  (``/invoke`` validates its input inside LangServe's error translation, ``/batch`` outside it).

LangServe lets the last three escape as a 500 (tests/system/test_fuzz.py found them); here each is a 422
saying what is wrong. Starlette keeps the parsed body on the request, so LangServe and the config
guard read it again for free.

A body that passes is then admitted against the caller's limits (``admission``), here because
only here is the body known: one request per input (a batch of n is n requests) with each
input's prompt tokens reserved, all or none, or 429. The access middleware leaves these routes to
this check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from langchain_core.utils.pydantic import TypeBaseModel
from pydantic import BaseModel, ValidationError

from api.context import current_request_id
from errors import TooLarge
from policy.limits import CallerLimits, estimate_prompt_tokens

BodyCheck = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True)
class SizeLimits:
    max_prompt_chars: int
    max_batch_inputs: int


def _questions(body: dict[str, Any]) -> list[Any]:
    if isinstance(body.get("inputs"), list):
        return [item.get("question") if isinstance(item, dict) else item for item in body["inputs"]]
    item = body.get("input")
    return [item.get("question") if isinstance(item, dict) else item]


def _check_size(body: dict[str, Any], limits: SizeLimits) -> None:
    inputs = body.get("inputs")
    if isinstance(inputs, list) and len(inputs) > limits.max_batch_inputs:
        raise TooLarge(
            f"a batch may hold {limits.max_batch_inputs} inputs (LLM_SERVER_MAX_BATCH_INPUTS), this one has "
            f"{len(inputs)}; split it",
            details={"limit_inputs": limits.max_batch_inputs},
        )
    longest = max((len(q) for q in _questions(body) if isinstance(q, str)), default=0)
    if longest > limits.max_prompt_chars:
        raise TooLarge(
            f"the question is {longest} characters; the limit is {limits.max_prompt_chars} "
            "(LLM_SERVER_MAX_PROMPT_CHARS): shorten it",
            details={"limit_chars": limits.max_prompt_chars},
        )


def _batch_errors(inputs: Any, input_schema: type[BaseModel]) -> list[dict[str, Any]]:
    if not isinstance(inputs, list):
        return [{"type": "list_type", "loc": ("body", "inputs"), "msg": "inputs must be a list of chain inputs"}]
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        try:
            input_schema.model_validate(item)
        except ValidationError as invalid:
            for error in invalid.errors(include_url=False, include_context=False):
                errors.append({**error, "loc": ("body", "inputs", index, *error["loc"])})
    return errors


def body_guard(input_schema: TypeBaseModel, limits: SizeLimits, admission: CallerLimits | None = None) -> BodyCheck:
    """``admission``: the limits each request is counted against once its body is known; without
    it nothing is counted here."""
    if not issubclass(input_schema, BaseModel):  # LangServe validates with pydantic 2; so do we
        raise TypeError(f"the chain's input schema {input_schema!r} is not a pydantic 2 model")

    async def check(request: Request) -> None:
        if request.method != "POST":
            return
        try:
            body = await request.json()
        except (ValueError, RecursionError) as unreadable:  # UnicodeDecodeError is a ValueError too
            # The shape of FastAPI's own json_invalid error, so every 422 has a list in ``detail``.
            msg = f"the request body must be a JSON object in UTF-8 ({unreadable})"
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": msg}]) from None
        if not isinstance(body, dict):
            return  # LangServe's own validation answers 422
        _check_size(body, limits)
        errors = []
        if "config" in body and body["config"] is None:
            errors.append(
                {"type": "dict_type", "loc": ("body", "config"), "msg": "config must be an object, or left out"}
            )
        if request.url.path.endswith("/batch") and "inputs" in body:
            errors.extend(_batch_errors(body["inputs"], input_schema))
        if errors:
            raise RequestValidationError(errors)
        caller = getattr(request.state, "caller", None)
        if admission is not None and caller is not None:
            questions = _questions(body)
            await admission.admit(
                caller,
                requests=max(1, len(questions)),
                tokens=sum(estimate_prompt_tokens(q) for q in questions if isinstance(q, str)),
                request_id=current_request_id(),
            )

    return check
