"""``CachedAnswer``: a ladder's answer as the response cache keeps it (JSON), and back as the
ladder returns it: the text a LangServe route's rungs answer with, or the chat message of the
OpenAI door's (content and response metadata such as the finish reason; no usage: a hit uses no
tokens), whole for an invoke or as chunks split after each word's spaces for a stream.

What is not kept: an answer that calls tools (the conversation goes on with the tool's result,
and a tool may act on the world), an empty one, and any output that is neither text nor a message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk

Kind = Literal["text", "message"]
_WORD_END = re.compile(r"(?<=\s)(?=\S)")  # where a word's trailing spaces end and the next word begins
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class CachedAnswer:
    kind: Kind
    content: Any  # text, or a message's content (text or content blocks)
    model: str
    alternative: str
    cost_usd: Decimal | None  # what the fresh answer cost: what each hit saves (None: not priced)
    response_metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, output: Any, *, model: str, alternative: str, cost: Decimal | None) -> CachedAnswer | None:
        """``output`` as it can be kept, or None when it should not be (see the module's docstring)."""
        if isinstance(output, str):
            return cls("text", output, model, alternative, cost) if output else None
        if not isinstance(output, AIMessage):  # an AIMessageChunk (a stream's whole answer) is one too
            return None
        if (
            getattr(output, "tool_calls", None)
            or getattr(output, "invalid_tool_calls", None)
            or getattr(output, "tool_call_chunks", None)
        ):
            return None
        if not output.text:
            return None
        # Only plain values: the metadata is JSON on its way to the store, and a hit's is a copy.
        metadata = {k: v for k, v in output.response_metadata.items() if isinstance(v, _PLAIN)}
        return cls("message", output.content, model, alternative, cost, metadata)

    @property
    def text(self) -> str:
        if self.kind == "text":
            return str(self.content)
        return AIMessage(content=self.content).text

    def output(self) -> Any:
        """The answer as the ladder's invoke returns it."""
        if self.kind == "text":
            return self.content
        return AIMessage(content=self.content, response_metadata=dict(self.response_metadata))

    def chunks(self) -> list[Any]:
        """The answer as the ladder's stream yields it: one chunk a word (with its trailing spaces);
        a message's last chunk carries its response metadata (the finish reason)."""
        pieces = [piece for piece in _WORD_END.split(self.text) if piece] or [""]
        if self.kind == "text":
            return pieces
        chunks = [AIMessageChunk(content=piece) for piece in pieces]
        chunks[-1] = AIMessageChunk(content=pieces[-1], response_metadata=dict(self.response_metadata))
        return chunks

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "content": self.content,
                "model": self.model,
                "alternative": self.alternative,
                "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
                "response_metadata": self.response_metadata,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, payload: str) -> CachedAnswer | None:
        """The answer ``to_json`` wrote; None for anything else (a row another version wrote)."""
        try:
            data = json.loads(payload)
            cost = data["cost_usd"]
            kind = data["kind"]
            if kind not in ("text", "message"):
                return None
            return cls(
                kind=kind,
                content=data["content"],
                model=str(data["model"]),
                alternative=str(data["alternative"]),
                cost_usd=None if cost is None else Decimal(cost),
                response_metadata=dict(data.get("response_metadata") or {}),
            )
        except (ValueError, KeyError, TypeError, ArithmeticError):
            return None
