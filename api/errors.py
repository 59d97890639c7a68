"""Exception handlers: every error leaves as JSON with a message, never as a stack trace.

``AllRungsFailed`` -> 503 with ``Retry-After`` and each attempt; ``RequestError`` -> its status
(429 with ``Retry-After``, 401 with the ``WWW-Authenticate`` challenge); the errors FastAPI,
Starlette and LangServe raise on their own (422 validation, 404, 405, 400 bad config hash) keep
their ``detail`` and gain the ``error`` and ``message`` every other error body has;
anything unexpected -> 500 with the request id to quote (the traceback goes to the log only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException

from api.context import REQUEST_ID_SCOPE_KEY, current_request_id, failure_body
from errors import AllRungsFailed, ConfigurationError, RateLimited, RequestError, Unauthenticated

logger = logging.getLogger("llm_server.errors")


class AsciiJSONResponse(JSONResponse):
    """A body in ASCII JSON: an error may echo what the caller sent, and a lone surrogate
    (``"\\udc80"``, valid in JSON, not in UTF-8) made the plain response fail into a 500. The
    app's own routes answer with it too: records stored before metadata was checked may hold one."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


# Basic first: browsers then ask for the key. One header each: Chromium drops a Basic challenge
# that shares its header with another, and then never asks (the playground stayed a 401).
AUTH_CHALLENGES = ('Basic realm="llm-server"', "Bearer")


def request_error_response(exc: RequestError) -> AsciiJSONResponse:
    """The JSON answer to a caller's mistake, with the header its status calls for."""
    body = {"error": exc.code, "message": exc.message, "detail": exc.message, **exc.details}
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    response = AsciiJSONResponse(body, status_code=exc.status, headers=headers)
    if isinstance(exc, Unauthenticated):
        for challenge in AUTH_CHALLENGES:
            response.headers.append("WWW-Authenticate", challenge)
    return response


def validation_message(errors: Sequence[Any], shown: int = 5) -> str:
    """``body.input.question: Field required; ...``: what is wrong, where. LangServe also raises
    validation errors whose items are plain strings ("Invalid JSON body")."""
    parts = []
    for error in errors[:shown]:
        if isinstance(error, dict):
            where = ".".join(str(part) for part in error.get("loc", ()))
            parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
        else:
            parts.append(str(error))
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "invalid request: " + ("; ".join(parts) or "the request does not match the schema") + more


def http_error_body(request: Request, exc: HTTPException) -> dict[str, str]:
    """``error`` and ``message`` for Starlette's and LangServe's own HTTP errors; the bare
    "Not Found" and "Method Not Allowed" say which path and which methods instead."""
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "HTTP error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    if message == phrase == "Not Found":
        message = f"nothing at {request.method} {request.url.path}; the routes are listed at /docs"
    elif message == phrase == "Method Not Allowed":
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; use {allowed or 'another method'}"
    return {"error": phrase.lower().replace(" ", "_"), "message": message}


def install_error_handlers(app: FastAPI, *, default_retry_after: int) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> AsciiJSONResponse:
        body = {"error": "invalid_request", "message": validation_message(exc.errors())}
        return AsciiJSONResponse({**body, "detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if not is_body_allowed_for_status_code(exc.status_code):
            return Response(status_code=exc.status_code, headers=exc.headers)
        body = {**http_error_body(request, exc), "detail": exc.detail}
        return AsciiJSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(AllRungsFailed)
    async def all_rungs_failed(request: Request, exc: AllRungsFailed) -> AsciiJSONResponse:
        retry_after = exc.retry_after(default_retry_after)
        return AsciiJSONResponse(
            failure_body(exc, retry_after, current_request_id()),
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> AsciiJSONResponse:
        return request_error_response(exc)

    @app.exception_handler(ConfigurationError)
    async def configuration_error(request: Request, exc: ConfigurationError) -> AsciiJSONResponse:
        logger.error("configuration error on %s: %s", request.url.path, exc)
        body = {"error": "server_misconfigured", "message": str(exc), "request_id": current_request_id()}
        return AsciiJSONResponse(body, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> AsciiJSONResponse:
        # Starlette runs this handler outside every middleware: the id comes from the scope.
        request_id = request.scope.get(REQUEST_ID_SCOPE_KEY)
        logger.exception("unexpected error on %s (request %s)", request.url.path, request_id)
        body = {
            "error": "internal_error",
            "message": "the server failed unexpectedly; quote the request id when reporting it",
            "request_id": request_id,
        }
        return AsciiJSONResponse(body, status_code=500)
