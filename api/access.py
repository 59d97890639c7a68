"""``AccessMiddleware``: who is calling, and may they: before any route runs.

- Bodies over ``max_body_bytes`` get 413, by their Content-Length or, without one, as soon as
  the bytes read pass the limit.
- With API keys configured, every path but ``/health`` needs one: ``X-API-Key``,
  ``Authorization: Bearer <key>``, or HTTP Basic with the key as the password (browsers ask for
  it on their own, which is how the playground and the dashboard get in). No or an unknown key
  gets 401, with each challenge in a ``WWW-Authenticate`` header of its own. Without keys every
  request is the open tier's ``anonymous`` caller.
- A keyed caller's POSTs count against its per-minute limits, 429 with Retry-After when used up:
  ``POST /feedback`` against the tier's feedback posts, the routes named in ``admitted_by_routes``
  (the chains) not here but once their body is read (``api.body_guard``: a batch counts each
  input, prompt tokens are reserved), any other POST as one request.

The caller is left in ``scope["state"]["caller"]`` (``request.state.caller``) for the routes.
A plain ASGI middleware, so streams pass through unbuffered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import request_error_response
from errors import RequestError, TooLarge, Unauthenticated
from policy.keys import ApiKeyRing, Caller
from policy.limits import CallerLimits

OPEN_PATHS = frozenset({"/health"})
FEEDBACK_PATH = "/feedback"


class _BodyTooLarge(Exception):
    pass


def presented_key(scope: Scope) -> str | None:
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}
    if headers.get("x-api-key", "").strip():
        return headers["x-api-key"].strip()
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


class AccessMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: ApiKeyRing,
        limits: CallerLimits,
        open_caller: Caller,
        max_body_bytes: int,
        admitted_by_routes: Collection[str] = (),
    ):
        """``admitted_by_routes``: path prefixes whose routes count their requests themselves."""
        self.app = app
        self.keys = keys
        self.limits = limits
        self.open_caller = open_caller
        self.max_body_bytes = max_body_bytes
        self.admitted_by_routes = tuple(prefix.rstrip("/") + "/" for prefix in admitted_by_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            caller = await self._admit(scope)
        except RequestError as refused:
            await request_error_response(refused)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._limited(receive), send_tracking)
        except _BodyTooLarge:
            if started:
                raise
            await request_error_response(self._too_large())(scope, receive, send)

    async def _admit(self, scope: Scope) -> Caller:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        if self.keys.empty:
            return self.open_caller
        path = scope.get("path", "")
        if path in OPEN_PATHS:
            return self.open_caller
        key = presented_key(scope)
        caller = self.keys.authenticate(key) if key else None
        if caller is None:
            problem = "the API key is not valid" if key else "this server needs an API key"
            raise Unauthenticated(
                f"{problem}: send it as X-API-Key or Authorization: Bearer <key> (browsers: as the password)"
            )
        if scope.get("method") == "POST":
            if path == FEEDBACK_PATH:
                await self.limits.admit_feedback(caller)
            elif not path.startswith(self.admitted_by_routes):
                await self.limits.admit(caller)
        return caller

    def _too_large(self) -> TooLarge:
        return TooLarge(
            f"the request body is over {self.max_body_bytes} bytes (LLM_SERVER_MAX_BODY_BYTES); send less",
            details={"limit_bytes": self.max_body_bytes},
        )

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        return receive_limited
