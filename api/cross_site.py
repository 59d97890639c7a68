"""``CrossSiteGuard``: what keeps other web pages a developer visits from using their server.

- A body sent with POST, PUT or PATCH must say ``Content-Type: application/json``: 415 otherwise.
  A page on another site can send ``text/plain`` or a form to localhost without asking first (a
  CORS "simple" request), and the chain routes used to parse such a body as JSON and answer it
  with gpt-4o; a JSON content type makes the browser ask first, and nobody answers that.
- HTML pages (the dashboard, the playgrounds) say they may not be framed by another site
  (``Content-Security-Policy: frame-ancestors 'self'``), so no page can overlay them to click.
- With ``allowed_hosts``, a request whose ``Host`` is not one of them gets 400. An open server
  allows only localhost names by default: a DNS-rebinding page (evil.example resolving to
  127.0.0.1) then reaches the server under its own name and is refused.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import request_error_response
from errors import RequestError, UnsupportedMediaType

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
LOCAL_HOSTS = ("localhost", "*.localhost", "127.0.0.1", "::1")
FRAME_POLICY = [(b"content-security-policy", b"frame-ancestors 'self'"), (b"x-frame-options", b"SAMEORIGIN")]


def is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def host_name(header: str) -> str:
    """``Host`` without its port: ``[::1]:8000`` -> ``::1``, ``Example.com:80`` -> ``example.com``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


def host_allowed(name: str, allowed: Collection[str]) -> bool:
    return any(name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])) for pattern in allowed)


class CrossSiteGuard:
    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str] | None = None):
        """``allowed_hosts``: the ``Host`` names answered (``*.example.com`` for subdomains); None: any."""
        self.app = app
        self.allowed_hosts = None if allowed_hosts is None else [host.lower() for host in allowed_hosts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_hosts is not None:
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not host_allowed(host_name(header), self.allowed_hosts):
                refused = RequestError(
                    f"this server does not answer to Host {header[:100]!r}; it answers to "
                    f"{', '.join(self.allowed_hosts)} (LLM_SERVER_ALLOWED_HOSTS)",
                    status=400,
                )
                await request_error_response(refused)(scope, receive, send)
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
