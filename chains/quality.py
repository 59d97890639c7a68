"""``QualityGate``: the seed's conditional fallback as a validator step.

An answer shorter than ``min_chars``, or one containing a ``forbidden_words`` entry (any case),
raises ``QualityRejected``, which a ``FallbackLadder`` treats like any provider failure. When
streaming, the gate holds chunks back until the answer passes (with forbidden words configured,
until it is complete), so a rejected answer never reaches the client and the next rung can still
take over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import Field

from errors import QualityRejected


class QualityGate(RunnableSerializable[str, str]):
    min_chars: int
    forbidden_words: list[str] = Field(default_factory=list)

    def _check(self, answer: str) -> str:
        length = len(answer.strip())
        if length < self.min_chars:
            raise QualityRejected(f"answer too short: {length} characters, at least {self.min_chars} required")
        lowered = answer.lower()
        found = [word for word in self.forbidden_words if word.lower() in lowered]
        if found:
            raise QualityRejected(f"answer contains forbidden words: {', '.join(found)}")
        return answer

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return self._call_with_config(self._check, input, config, run_type="parser")

    async def ainvoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return self.invoke(input, config, **kwargs)

    def _gate(self, chunks: Iterator[str]) -> Iterator[str]:
        holdback = _Holdback(self)
        for chunk in chunks:
            released = holdback.feed(chunk)
            if released:
                yield released
        rest = holdback.finish()
        if rest:
            yield rest

    async def _agate(self, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        holdback = _Holdback(self)
        async for chunk in chunks:
            released = holdback.feed(chunk)
            if released:
                yield released
        rest = holdback.finish()
        if rest:
            yield rest

    def transform(self, input: Iterator[str], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[str]:
        yield from self._transform_stream_with_config(input, self._gate, config, run_type="parser")

    async def atransform(
        self, input: AsyncIterator[str], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[str]:
        async for chunk in self._atransform_stream_with_config(input, self._agate, config, run_type="parser"):
            yield chunk

    def stream(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[str]:
        yield from self.transform(iter([input]), config, **kwargs)

    async def astream(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[str]:
        async def once() -> AsyncIterator[str]:
            yield input

        async for chunk in self.atransform(once(), config, **kwargs):
            yield chunk


class _Holdback:
    """Holds a stream's text until it is long enough, then lets everything through."""

    def __init__(self, gate: QualityGate):
        self.gate = gate
        self.held: list[str] = []
        self.passed = False

    def feed(self, chunk: str) -> str:
        if self.passed:
            return chunk
        self.held.append(chunk)
        text = "".join(self.held)
        # A forbidden word may still come at the very end: then nothing passes before the end.
        if self.gate.forbidden_words or len(text.strip()) < self.gate.min_chars:
            return ""
        self.passed = True
        return text

    def finish(self) -> str:
        """Check what is still held; return it if it passes (raises if it does not)."""
        if self.passed:
            return ""
        return self.gate._check("".join(self.held))
