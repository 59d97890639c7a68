"""``CrossSiteGuard``: what keeps other web pages a developer visits from using their server.

- A body sent with POST, PUT or PATCH must say ``Content-Type: application/json``: 415 otherwise.
  A page on another site can send ``text/plain`` or a form to localhost without asking first (a
  CORS "simple" request), and the chain routes used to parse such a body as JSON and answer it
  with gpt-4o; a JSON content type makes the browser ask first, and nobody answers that.
- HTML pages (the dashboard, the playgrounds) say they may not be framed by another site
  (``Content-Security-Policy: frame-ancestors 'self'``), so no page can overlay them to click.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import request_error_response
from errors import UnsupportedMediaType

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
FRAME_POLICY = [(b"content-security-policy", b"frame-ancestors 'self'"), (b"x-frame-options", b"SAMEORIGIN")]


def is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class CrossSiteGuard:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in WITH_BODY and not is_json(dict(scope["headers"]).get(b"content-type", b"")):
            refused = UnsupportedMediaType(
                f"send the body as JSON with Content-Type: application/json ({scope['method']} {scope['path']})"
            )
            await request_error_response(refused)(scope, receive, send)
            return

        async def framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if any(name == b"content-type" and value.startswith(b"text/html") for name, value in headers):
                    message = {**message, "headers": [*headers, *FRAME_POLICY]}
            await send(message)

        await self.app(scope, receive, framed)
