"""``HeldResponse``: a response a middleware holds back until its body is complete, to send it
rewritten (a new body, perhaps a new status) with its ``Content-Length`` made to match."""

from __future__ import annotations

from starlette.types import Message, Send


class HeldResponse:
    def __init__(self, start: Message):
        self.start = start
        self._chunks: list[bytes] = []

    def add(self, message: Message) -> bytes | None:
        """Take one ``http.response.body`` message; the whole body once it is complete, else None."""
        self._chunks.append(message.get("body", b""))
        return None if message.get("more_body", False) else b"".join(self._chunks)

    async def send(self, send: Send, body: bytes, *, status: int | None = None) -> None:
        headers = [(k, v) for k, v in self.start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**self.start, "status": status or self.start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
