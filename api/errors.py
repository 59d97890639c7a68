"""Exception handlers: every error leaves as JSON with a message, never as a stack trace.

``AllRungsFailed`` -> 503 with ``Retry-After`` and each attempt; ``RequestError`` -> its status
(429 with ``Retry-After``, 401 with the ``WWW-Authenticate`` challenge);
anything unexpected -> 500 with the request id to quote (the traceback goes to the log only).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.context import REQUEST_ID_SCOPE_KEY, current_request_id, failure_body
from errors import AllRungsFailed, ConfigurationError, RateLimited, RequestError, Unauthenticated

logger = logging.getLogger("llm_server.errors")


AUTH_CHALLENGE = 'Basic realm="llm-server", Bearer'  # Basic first: browsers then ask for the key


def request_error_response(exc: RequestError) -> JSONResponse:
    """The JSON answer to a caller's mistake, with the header its status calls for."""
    body = {"error": exc.code, "message": exc.message, "detail": exc.message, **exc.details}
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = AUTH_CHALLENGE
    return JSONResponse(body, status_code=exc.status, headers=headers)


def install_error_handlers(app: FastAPI, *, default_retry_after: int) -> None:
    @app.exception_handler(AllRungsFailed)
    async def all_rungs_failed(request: Request, exc: AllRungsFailed) -> JSONResponse:
        retry_after = exc.retry_after(default_retry_after)
        return JSONResponse(
            failure_body(exc, retry_after, current_request_id()),
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return request_error_response(exc)

    @app.exception_handler(ConfigurationError)
    async def configuration_error(request: Request, exc: ConfigurationError) -> JSONResponse:
        logger.error("configuration error on %s: %s", request.url.path, exc)
        body = {"error": "server_misconfigured", "message": str(exc), "request_id": current_request_id()}
        return JSONResponse(body, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this handler outside every middleware: the id comes from the scope.
        request_id = request.scope.get(REQUEST_ID_SCOPE_KEY)
        logger.exception("unexpected error on %s (request %s)", request.url.path, request_id)
        body = {
            "error": "internal_error",
            "message": "the server failed unexpectedly; quote the request id when reporting it",
            "request_id": request_id,
        }
        return JSONResponse(body, status_code=500)
