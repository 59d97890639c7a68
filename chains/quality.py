"""``QualityGate``: the seed's conditional fallback as a validator step.

An answer shorter than ``min_chars``, or one containing a ``forbidden_words`` entry (any case),
raises ``QualityRejected``, which a ``FallbackLadder`` treats like any provider failure. When
streaming, the gate holds chunks back until the answer passes (with forbidden words configured,
until it is complete), so a rejected answer never reaches the client and the next rung can still
take over. It judges text (the LangServe routes) and chat messages (the OpenAI-compatible door,
which needs the message's usage and finish reason) alike.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import Field

from errors import QualityRejected
from vocabulary.run_metadata import ANSWER_SO_FAR


class QualityGate(RunnableSerializable[Any, Any]):
    min_chars: int
    forbidden_words: list[str] = Field(default_factory=list)

    def _check(self, answer: Any) -> Any:
        """``answer`` (text or a message) if it passes; raises ``QualityRejected`` if not."""
        if getattr(answer, "tool_calls", None) or getattr(answer, "tool_call_chunks", None):
            return answer  # a call for a tool is not an answer to judge by its length
        text = _text(answer)
        length = len(text.strip())
        if length < self.min_chars:
            raise QualityRejected(f"answer too short: {length} characters, at least {self.min_chars} required")
        lowered = text.lower()
        found = [word for word in self.forbidden_words if word.lower() in lowered]
        if found:
            raise QualityRejected(f"answer contains forbidden words: {', '.join(found)}")
        return answer

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._check, input, config, run_type="parser")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.invoke(input, config, **kwargs)

    def _gate(
        self, chunks: Iterator[Any], run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Iterator[Any]:
        holdback = _Holdback(self, _answer_so_far(config))
        for chunk in chunks:
            released = holdback.feed(chunk)
            if released is not None:
                yield released
        rest = holdback.finish()
        if rest is not None:
            yield rest

    async def _agate(
        self, chunks: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[Any]:
        holdback = _Holdback(self, _answer_so_far(config))
        async for chunk in chunks:
            released = holdback.feed(chunk)
            if released is not None:
                yield released
        rest = holdback.finish()
        if rest is not None:
            yield rest

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(input, self._gate, config, run_type="parser")

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in self._atransform_stream_with_config(input, self._agate, config, run_type="parser"):
            yield chunk

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.transform(iter([input]), config, **kwargs)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async def once() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(once(), config, **kwargs):
            yield chunk


def _text(item: Any) -> str:
    return item.text if isinstance(item, BaseMessage) else str(item)


def _answer_so_far(config: RunnableConfig) -> str:
    """The text a continued answer already has (``chains.ladder``): the gate judges the whole."""
    return str((config.get("metadata") or {}).get(ANSWER_SO_FAR) or "")


class _Holdback:
    """Holds a stream's chunks (text or message chunks) until their text, after ``so_far`` (the
    answer's text before them, when they continue it), is long enough, then lets everything
    through; what it releases at once is the held chunks joined into one."""

    def __init__(self, gate: QualityGate, so_far: str = ""):
        self.gate = gate
        self.so_far = so_far
        self.held: list[Any] = []
        self.passed = False

    def feed(self, chunk: Any) -> Any | None:
        if self.passed:
            return chunk
        self.held.append(chunk)
        text = self.so_far + "".join(_text(c) for c in self.held)
        # A forbidden word may still come at the very end: then nothing passes before the end.
        if self.gate.forbidden_words or len(text.strip()) < self.gate.min_chars:
            return None
        self.passed = True
        return self._joined()

    def finish(self) -> Any | None:
        """Check what is still held; return it if it passes (raises if it does not)."""
        if self.passed:
            return None
        if not self.held:
            self.gate._check(self.so_far)  # an empty answer is too short
            return None
        joined = self._joined()
        self.gate._check(self.so_far + _text(joined) if self.so_far else joined)
        return joined

    def _joined(self) -> Any:
        return functools.reduce(operator.add, self.held)  # str + str, or AIMessageChunk + AIMessageChunk
