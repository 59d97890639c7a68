"""A real HTTP receiver for alert deliveries: records every POST, can fail or hang on demand."""

from __future__ import annotations

import asyncio
import email.policy
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class HttpReceiver:
    """Records every POST; per path it can answer ``fail_status`` for the first N requests, or hang."""

    received: list[Received] = field(default_factory=list)
    fail_first: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (count, status)
    hang: set[str] = field(default_factory=set)
    port: int = 0
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def reset(self) -> None:
        self._release.set()  # let any request still hanging from the previous test finish
        self._release = threading.Event()
        with self._lock:
            self.received.clear()
        self.fail_first.clear()
        self.hang.clear()

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        record = Received(path, dict(request.headers), await request.json(), 200)
        with self._lock:
            self.received.append(record)
            count, status = self.fail_first.get(path, (0, 0))
            if count:
                self.fail_first[path] = (count - 1, status)
                record.status = status
        if path in self.hang:
            release = self._release
            while not release.is_set():  # runs on the server's loop, not the test's
                await asyncio.sleep(0.01)
        return JSONResponse({"ok": record.status == 200}, status_code=record.status)

    def start(self) -> uvicorn.Server:
        self.port, server = _serve_in_thread(self.handle, ["POST"], "HTTP receiver")
        return server


@dataclass
class TracePart:
    """One part of a LangSmith ingest request: ``post.<run id>`` (a run started, ended or both),
    ``patch.<run id>`` (a run ended), or one of their fields sent apart (``post.<run id>.inputs``)."""

    name: str
    data: Any


@dataclass
class TraceRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def parts(self) -> list[TracePart]:
        """The runs this request carries: the parts of a multipart ingest (``/runs/multipart``), or
        the ``post`` and ``patch`` lists of a JSON batch (``/runs/batch``)."""
        content_type = self.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            head = f"Content-Type: {content_type}\r\n\r\n".encode()
            message = BytesParser(policy=email.policy.default).parsebytes(head + self.body)
            return [
                TracePart(str(part.get_param("name", header="content-disposition")), json.loads(part.get_content()))
                for part in message.iter_parts()
            ]
        if self.method == "POST" and self.path.endswith("/runs/batch"):
            batch = json.loads(self.body)
            return [TracePart(f"{op}.{run['id']}", run) for op in ("post", "patch") for run in batch.get(op) or []]
        return []


@dataclass
class TraceReceiver:
    """A stand-in LangSmith API on a free local port: answers ``GET /info`` with no special
    features (so the client sends plain, uncompressed multipart) and records every request."""

    received: list[TraceRequest] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[TraceRequest]:
        with self._lock:
            return list(self.received)

    def runs(self) -> list[TracePart]:
        """Every run part received so far, in order."""
        return [part for request in self.requests() for part in request.parts()]

    def reset(self) -> None:
        with self._lock:
            self.received.clear()

    async def handle(self, request: Request) -> Response:
        record = TraceRequest(request.method, request.url.path, dict(request.headers), await request.body())
        with self._lock:
            self.received.append(record)
        return JSONResponse({})

    def start(self) -> uvicorn.Server:
        self.port, server = _serve_in_thread(self.handle, ["GET", "POST", "PATCH"], "trace receiver")
        return server


def _serve_in_thread(
    handle: Callable[[Request], Awaitable[Response]], methods: list[str], what: str
) -> tuple[int, uvicorn.Server]:
    """``handle`` answering every path on a free port, served by uvicorn on a thread of its own."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = Starlette(routes=[Route("/{path:path}", handle, methods=methods)])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:  # another thread's start-up: no event to wait on
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.01)
    return int(sock.getsockname()[1]), server
