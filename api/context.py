"""``RequestContextMiddleware``: gives every request an id and tells the client which model
answered.

It opens a ``collect_serving_report()`` block around the request, so the fallback ladders report
into it, then adds ``X-Request-Id``, ``X-Served-By`` (the model), ``X-Fallback-Rung`` and
``X-Attempts`` (the model calls it took) and ``X-Budget-Downgraded`` (the budgets that could not
cover a rung, so a cheaper one answered), ``X-Cache`` (the response cache's ``hit``, ``miss`` or
``bypass``, one per run), ``X-Server-Overhead-Ms`` (the server's own time: the request's so far,
less its waits for model providers, ``resilience.provider_wait``; on a stream, up to its first
byte, the whole request's going to the ``llm_server_overhead_seconds`` histogram) and, when tracing
is on, ``X-Trace-Id`` to the response, and to a LangServe route's body what the request got
(``api.served_metadata``). On streams it also
replaces LangServe's scrubbed ``500 Internal Server Error`` event with the real answer: 503 with
the retry hint and each attempt's cause when every rung failed, 502 naming the model and cause
when a stream broke off after text was sent.
A plain ASGI middleware (not ``BaseHTTPMiddleware``) so streams pass through unbuffered and the
context reaches the endpoint's task.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.held_response import HeldResponse
from api.request_tracing import current_trace_id
from api.served_metadata import StreamAnnotator, annotate_response, route_kind
from chains.serving_report import ServingReport, collect_serving_report
from errors import AllRungsFailed, RequestError, StreamInterrupted
from resilience.provider_wait import ProviderWait, provider_wait_scope

logger = logging.getLogger("llm_server.requests")

REQUEST_ID_SCOPE_KEY = "llm_server.request_id"
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_EXPECTED = (AllRungsFailed, RequestError, StreamInterrupted)  # failures with an answer of their own, not bugs
_SCRUBBED = re.compile(rb'data: \{"status_code": 500, "message": "Internal Server Error"\}')


def current_request_id() -> str | None:
    return _request_id.get()


def failure_body(error: AllRungsFailed, retry_after: int, request_id: str | None) -> dict[str, object]:
    return {
        "error": error.code,
        "message": f"{error}. Retry after {retry_after}s, or pick another model.",
        "status_code": 503,
        "ladder": error.ladder,
        "attempts": [a.as_dict() for a in error.attempts],
        "retry_after": retry_after,
        "request_id": request_id,
    }


def interrupted_body(error: StreamInterrupted) -> dict[str, object]:
    """A stream that broke off, for its error event on either door: whose answer broke, why, and
    each model that was asked to continue it and could not."""
    return {
        "error": error.code,
        "message": str(error),
        "model": error.model,
        "cause": error.cause.value,
        "continuations": [a.as_dict() for a in error.continuations],
    }


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        default_retry_after: int = 30,
        on_response: Callable[[str, str, int, float], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        client_ids: bool = True,
        trace_ids: bool = False,
        on_overhead: Callable[[str, float], None] | None = None,
    ):
        """``client_ids``: whether a well-formed ``X-Request-Id`` from the client becomes the
        request's id. With API keys it does not (one key could file its calls under another's
        id): the server names every request and echoes the client's as ``X-Client-Request-Id``.
        ``trace_ids``: tracing is on, and the response names its trace. ``on_overhead(route,
        seconds)``: the server's own time of each request, once it is answered (for metrics)."""
        self.app = app
        self.default_retry_after = default_retry_after
        self.on_response = on_response  # (route, method, status, seconds), for metrics
        self._clock = clock
        self.client_ids = client_ids
        self.trace_ids = trace_ids
        self.on_overhead = on_overhead

    @staticmethod
    def _client_id_of(scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _CLIENT_ID.match(candidate):
                    return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = self._client_id_of(scope)
        request_id = client_id if client_id and self.client_ids else uuid.uuid4().hex
        echoed = [(b"x-client-request-id", client_id.encode())] if client_id and client_id != request_id else []
        trace_id = current_trace_id() if self.trace_ids else None  # the server span is active here
        if trace_id is not None:
            echoed.append((b"x-trace-id", trace_id.encode()))
        scope[REQUEST_ID_SCOPE_KEY] = request_id  # for handlers that run outside this middleware
        token = _request_id.set(request_id)
        started = finished = False
        is_stream = False
        status = 500
        began = self._clock()
        kind = route_kind(scope["path"])
        held: HeldResponse | None = None  # an /invoke or /batch answer, until its body is annotated

        async def send_with_context(message: Message) -> None:
            nonlocal started, finished, is_stream, status, held
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                content_type = dict(headers).get(b"content-type", b"")
                is_stream = content_type.startswith(b"text/event-stream")
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(echoed)
                headers.extend(_served_headers(outcomes))
                headers.append((b"x-server-overhead-ms", f"{own_time(waits) * 1000:.2f}".encode()))
                message = {**message, "headers": headers}
                if kind in ("invoke", "batch") and status == 200 and content_type.startswith(b"application/json"):
                    held = HeldResponse(message)
                    return
            elif message["type"] == "http.response.body" and held is not None:
                body = held.add(message)
                if body is not None:
                    await held.send(send, annotate_response(body, outcomes))
                    finished = True
                return
            elif message["type"] == "http.response.body" and is_stream:
                body = message.get("body", b"")
                if kind == "stream":
                    body = annotator.feed(body)
                if outcomes.failures:
                    body = self._rewrite_error_event(body, outcomes)
                message = {**message, "body": body}
            finished = message["type"] == "http.response.body" and not message.get("more_body", False)
            await send(message)

        waits = ProviderWait(self._clock)

        def own_time(tally: ProviderWait) -> float:
            return max(0.0, self._clock() - began - tally.seconds())

        try:
            with collect_serving_report() as outcomes, provider_wait_scope(waits):
                annotator = StreamAnnotator(outcomes)
                await self.app(scope, receive, send_with_context)
        except Exception as exc:
            if not started:
                raise
            # A stream has already told the client in its error event; log once, don't re-raise
            # into the server (Starlette wraps handled errors in a RuntimeError at this point).
            failure = exc if isinstance(exc, _EXPECTED) else exc.__cause__
            if isinstance(failure, _EXPECTED):
                logger.warning("request %s: %s", request_id, failure)
            else:
                logger.exception("request %s failed after its response started", request_id)
            if not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            _request_id.reset(token)
            if self.on_response is not None:
                self.on_response(_route_of(scope), scope["method"], status, self._clock() - began)
            if self.on_overhead is not None:
                self.on_overhead(_route_of(scope), own_time(waits))

    def _rewrite_error_event(self, body: bytes, outcomes: ServingReport) -> bytes:
        if b"event: error" not in body:
            return body
        error = outcomes.failures[-1]
        content: dict[str, object]
        if isinstance(error, AllRungsFailed):
            content = failure_body(error, error.retry_after(self.default_retry_after), current_request_id())
        elif isinstance(error, StreamInterrupted):
            content = {**interrupted_body(error), "status_code": 502, "request_id": current_request_id()}
        else:
            content = {"status_code": error.status, "error": error.code, "message": error.message}
        payload = json.dumps(content)
        return _SCRUBBED.sub(lambda _: b"data: " + payload.encode(), body, count=1)


def _route_of(scope: Scope) -> str:
    # The matched route's template keeps metric labels bounded; unmatched paths share one label.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def _served_headers(outcomes: ServingReport) -> list[tuple[bytes, bytes]]:
    cache = [(b"x-cache", ",".join(outcomes.cache).encode())] if outcomes.cache else []
    served = outcomes.served or ([outcomes.streaming] if outcomes.streaming else [])
    if not served:
        return cache
    downgraded = [(b"x-budget-downgraded", ",".join(outcomes.downgraded).encode())] if outcomes.downgraded else []
    models = ",".join(s.model for s in served)
    rungs = ",".join(str(s.rung) for s in served)
    tries = ",".join(str(s.tries) for s in served)
    return [
        (b"x-served-by", models.encode()),
        (b"x-fallback-rung", rungs.encode()),
        (b"x-attempts", tries.encode()),
        *downgraded,
        *cache,
    ]
