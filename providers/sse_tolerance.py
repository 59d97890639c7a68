"""Skip server-sent events the OpenAI SDK could not parse, instead of losing the whole stream.

The SDK ``json.loads`` the data of every event it dispatches and a single one that is not JSON
ends the stream with ``json.JSONDecodeError``. ``tolerate_bad_chunks`` is an httpx response
event hook: for a ``text/event-stream`` response of a call that carries a ``BadChunkTally`` (the
guard sets one around each step of the model's stream, see ``providers.guard``), it puts an
``EventFilter`` between the connection and the SDK. The filter passes every event through
byte for byte, except one the SDK would dispatch whose data is neither ``[DONE]`` nor JSON: that
one is dropped and counted on the tally; past the tally's limit the stream fails as
``malformed_stream``.

A hook rather than a transport wrapper: it leaves the SDK's own transport (its pool limits, and
the proxies httpx reads from the environment, which a custom transport turns off) untouched, runs
once per response, and sees the response headers before the SDK reads the body. A response
without a tally in context (no guard, or ``max_bad_chunks`` unset), an error status (its body is
the SDK's to read whole) or a compressed body (the stream under the hook holds the encoded bytes)
is left alone. The OpenAI SDK is ``httpx2``'s (openai 3), so the hook is on an ``httpx2`` client.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextvars import ContextVar
from datetime import timedelta

import httpx2

from errors import Cause, ProviderError

# A blank line ends an event: two line ends in a row (LF, CRLF or mixed), or two bare CRs.
_EVENT_END = re.compile(rb"\n\r?\n|\r\r")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_DECODER = json.JSONDecoder()


def _event_ends(data: bytes) -> list[tuple[int, int]]:
    """For each blank line in ``data``: where the event before it ends, and where the next begins."""
    if b"\r\r" in data:  # bare CRs (the SSE spec allows them; nobody sends them): the regex
        return [(m.start(), m.end()) for m in _EVENT_END.finditer(data)]
    # ``_EVENT_END`` without its bare-CR branch, by ``bytes.find``: several times faster per event.
    ends = []
    last = len(data) - 1
    i = data.find(b"\n")
    while 0 <= i < last:  # a LF in the last byte ends no event yet
        if data[i + 1] == 10:  # LF LF
            ends.append((i, i + 2))
            i = data.find(b"\n", i + 2)
        elif data[i + 1] == 13 and i + 2 <= last and data[i + 2] == 10:  # LF CRLF
            ends.append((i, i + 3))
            i = data.find(b"\n", i + 3)
        else:
            i = data.find(b"\n", i + 1)
    return ends


def _is_json(payload: bytes) -> bool:
    """Whether the SDK's ``json.loads`` of the payload, decoded as strict UTF-8 as it does, works."""
    try:
        text = payload.decode()
        _, end = _DECODER.raw_decode(text)  # json.loads without its two whitespace scans
        if end == len(text):
            return True
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        pass
    try:
        json.loads(payload.decode())  # the verdict, for what raw_decode refuses (whitespace around)
    except ValueError:
        return False
    return True


class BadChunkTally:
    """One model call's count of skipped events; more than ``limit`` of them break its stream."""

    __slots__ = ("count", "limit", "model")

    def __init__(self, limit: int, model: str) -> None:
        self.limit = limit
        self.model = model
        self.count = 0

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    def error(self) -> ProviderError:
        return ProviderError(
            f"{self.model} sent {self.count} stream chunks that are not JSON, more than the "
            f"{self.limit} a stream may skip (LLM_SERVER_MAX_BAD_CHUNKS)",
            cause=Cause.MALFORMED_STREAM,
        )


# The tally of the model call running in this context. The client is shared by every request, so
# the hook finds the call it serves here; the guard sets it with no ``yield`` before the reset.
active_tally: ContextVar[BadChunkTally | None] = ContextVar("sse_bad_chunk_tally", default=None)


class EventFilter:
    """Re-frames a byte stream into whole events (an event may span reads, a read may hold
    several) and drops the events the SDK would dispatch but could not parse.

    The SDK's rules, mirrored: comments (``:``) are ignored; an event dispatches when it has a
    ``data`` field, a non-empty ``event``, a numeric ``retry``, or while the stream's last ``id`` is
    not empty (the SDK keeps it across events); its data lines are joined with newlines; ``[DONE]``
    ends the stream; a trailing event with no blank line after it is never dispatched: it passes.
    """

    __slots__ = ("_id_seen", "_tail", "_tally")

    def __init__(self, tally: BadChunkTally) -> None:
        self._tally = tally
        self._tail = b""
        self._id_seen = False

    def feed(self, data: bytes) -> bytes:
        """The bytes of ``data`` (after what an earlier read left) that may go to the SDK now: its
        whole good events. Stops at the event that exceeds the tally's limit."""
        if self._tail:
            data = self._tail + data
        elif data.startswith(b"data: ") and data.find(b"\n") == len(data) - 2 and data[-1] == 10 and b"\r" not in data:
            if _is_json(data[6:-2]):
                return data  # the usual read, one good event of one line, at a third less than below
        start = 0
        kept: list[bytes] | None = None  # only once an event is dropped; else a slice of ``data``
        for text_end, end in _event_ends(data):
            if self._parses(data[start:text_end]):
                if kept is not None:
                    kept.append(data[start:end])
            else:
                if kept is None:
                    kept = [data[:start]]
                self._tally.count += 1
                if self._tally.exceeded:
                    self._tail = b""
                    return b"".join(kept)
            start = end
        self._tail = data[start:]
        if kept is not None:
            return b"".join(kept)
        return data if start == len(data) else data[:start]

    def flush(self) -> bytes:
        """What is left at the end of the stream: an unfinished event, which the SDK ignores."""
        tail, self._tail = self._tail, b""
        return tail

    def _parses(self, event: bytes) -> bool:
        if event.endswith(b"\r"):
            event = event[:-1]  # the last line's CR of a CRLF stream
        if event.startswith(b"data: ") and b"\n" not in event and b"\r" not in event:
            payload = event[6:]  # one data line: the usual event
            return payload.startswith(b"[DONE]") or _is_json(payload)
        data, id_seen = self._fields(event)
        good = data is None or data.startswith(b"[DONE]") or _is_json(data)
        if good:
            self._id_seen = id_seen  # the SDK sees the ids of the events that pass only
        return good

    def _fields(self, event: bytes) -> tuple[bytes | None, bool]:
        """The data an event of several lines dispatches (None when it dispatches nothing), and
        whether the stream has a last id after it."""
        data: list[bytes] = []
        dispatches = False
        id_seen = self._id_seen
        for line in _LINE_END.split(event):
            if not line or line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                data.append(value)
                dispatches = True
            elif field == b"event":
                dispatches = dispatches or bool(value)
            elif field == b"id" and b"\0" not in value:
                id_seen = bool(value)  # an empty id clears the last one
            elif field == b"retry":
                try:
                    int(value)
                except ValueError:
                    continue
                dispatches = True
        if not (dispatches or id_seen):
            return None, id_seen
        return b"\n".join(data), id_seen


class _TolerantStream(httpx2.AsyncByteStream):
    """The response's byte stream through an ``EventFilter``."""

    def __init__(self, stream: httpx2.AsyncByteStream, tally: BadChunkTally) -> None:
        self._stream = stream
        self._tally = tally

    @property
    def elapsed(self) -> timedelta | None:  # httpx reads the response's elapsed time from its stream
        return getattr(self._stream, "elapsed", None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        events = EventFilter(self._tally)
        stream = self._stream.__aiter__()
        try:
            async for data in stream:
                kept = events.feed(data)
                if kept:
                    yield kept
                if self._tally.exceeded:
                    raise self._tally.error()
            tail = events.flush()
            if tail:
                yield tail
        finally:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def tolerate_bad_chunks(response: httpx2.Response) -> None:
    """httpx response hook: filter the events of a guarded call's stream (see the module doc)."""
    tally = active_tally.get()
    if tally is None or not response.is_success or not isinstance(response.stream, httpx2.AsyncByteStream):
        return
    headers = response.headers
    if not headers.get("content-type", "").lower().startswith("text/event-stream"):
        return
    if headers.get("content-encoding", "identity").lower() != "identity":
        return
    response.stream = _TolerantStream(response.stream, tally)
