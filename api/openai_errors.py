"""``OpenAIErrorEnvelope``: on the OpenAI-compatible routes (``/v1/...``), every error leaves in
OpenAI's envelope, ``{"error": {"message", "type", "param", "code"}}``, with the statuses its SDKs
map to their exception classes (``openai.BadRequestError`` for 400, ``RateLimitError`` for 429,
...), whoever raised it: the access middleware (401, 413, 429), the door's own checks, the
exception handlers (403, 503 with each attempt) or FastAPI (404, 405).

One translator at the edge instead of a second error tree: every other part of the server keeps
raising and answering its own errors, and the details they carry (``allowed``, ``attempts``,
``retry_after``) stay in the envelope next to OpenAI's four fields.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.held_response import HeldResponse

OPENAI_PREFIX = "/v1/"

# OpenAI answers a malformed request with 400 where the LangServe routes answer 422.
_STATUS = {422: 400}
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Our error body (``error`` code, ``message``, details) in OpenAI's envelope."""
    details = {k: v for k, v in body.items() if k not in ("error", "message", "detail", "parameter", "status_code")}
    return {
        "error": {
            "message": str(body.get("message") or body.get("error") or "error"),
            "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": body.get("parameter"),
            "code": body.get("error") if isinstance(body.get("error"), str) else None,
            **details,
        }
    }


def is_openai_path(scope: Scope) -> bool:
    return str(scope.get("path", "")).startswith(OPENAI_PREFIX)


class OpenAIErrorEnvelope:
    """Rewrites JSON error responses under ``/v1/``; streams and successes pass untouched."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_openai_path(scope):
            await self.app(scope, receive, send)
            return
        held: HeldResponse | None = None

        async def send_translated(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                is_json = headers.get(b"content-type", b"").startswith(b"application/json")
                if message["status"] >= 400 and is_json:
                    held = HeldResponse(message)  # until the body is complete
                    return
            elif message["type"] == "http.response.body" and held is not None:
                body = held.add(message)
                if body is not None:
                    await self._send_translated(held, body, send)
                return
            await send(message)

        await self.app(scope, receive, send_translated)

    @staticmethod
    async def _send_translated(held: HeldResponse, body: bytes, send: Send) -> None:
        status = int(held.start["status"])
        try:
            ours = json.loads(body)
        except ValueError:
            ours = {"message": body.decode("utf-8", "replace")}
        if isinstance(ours, dict) and not isinstance(ours.get("error"), dict):
            body = json.dumps(openai_error(status, ours), ensure_ascii=True).encode("ascii")
        await held.send(send, body, status=_STATUS.get(status, status))
