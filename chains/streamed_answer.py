"""``StreamedAnswer``: what of one streamed answer reached the client, across the rungs that
contributed to it (the first, and each that continued it after a break), and the continuation's
repeat dropped on its way (``chains.continuation.OverlapTrimmer``).

Chunks are text (a route ending in a parser) or message chunks (the OpenAI-compatible door).
While a continuation's start is held back, its chunks wait whole; they go out joined, their text
cut to what the trimmer released, so usage and finish reasons they carry are never lost.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from chains.continuation import OverlapTrimmer


def chunk_text(chunk: Any) -> str:
    return chunk.text if isinstance(chunk, BaseMessage) else str(chunk)


def _with_text(chunk: Any, text: str) -> Any:
    return chunk.model_copy(update={"content": text}) if isinstance(chunk, BaseMessage) else text


def _carries_more_than_text(chunk: Any) -> bool:
    if not isinstance(chunk, BaseMessage):
        return False
    return bool(getattr(chunk, "usage_metadata", None) or chunk.response_metadata)


@dataclass(frozen=True)
class Part:
    """One rung's part of the answer: characters ``start`` to ``end``; ``dropped``: the characters
    of its stream that repeated the answer so far."""

    start: int
    end: int
    dropped: int = 0


@dataclass
class StreamedAnswer:
    text: str = ""
    final: Any = None  # every chunk that went out, added up: the ladder's output
    tool_calls: bool = False  # part of a tool call went out: such a stream is never continued
    _trimmer: OverlapTrimmer | None = None
    _held: list[Any] = field(default_factory=list)
    _start: int = 0

    @property
    def started(self) -> bool:
        """Part of the answer reached the client."""
        return bool(self.text) or self.tool_calls

    def begin(self) -> None:
        """A rung starts its part: a continuation when the answer has text already."""
        self._held.clear()
        self._start = len(self.text)
        self._trimmer = OverlapTrimmer(self.text) if self.text else None

    def feed(self, chunk: Any) -> Any | None:
        """``chunk`` as it may go out now (None while held back)."""
        if self._trimmer is None or self._trimmer.decided:
            return self._sent(chunk)
        self._held.append(chunk)
        released = self._trimmer.feed(chunk_text(chunk))
        return self._release(released) if self._trimmer.decided else None

    def finish(self) -> Any | None:
        """The rung's stream ended: what it still held back, if anything is left to send."""
        if self._trimmer is None or self._trimmer.decided or not self._held:
            return None
        return self._release(self._trimmer.finish())

    def part(self) -> Part | None:
        """What the current rung added (None if nothing went out)."""
        if len(self.text) == self._start and not (self.tool_calls and self._start == 0):
            return None
        return Part(self._start, len(self.text), self._trimmer.dropped if self._trimmer else 0)

    def _release(self, text: str) -> Any | None:
        joined = functools.reduce(operator.add, self._held)
        self._held.clear()
        if not text and not _carries_more_than_text(joined):
            return None
        return self._sent(_with_text(joined, text))

    def _sent(self, chunk: Any) -> Any:
        self.text += chunk_text(chunk)
        if getattr(chunk, "tool_call_chunks", None):
            self.tool_calls = True
        self.final = chunk if self.final is None else self.final + chunk
        return chunk
