"""``LocalChatModel``: the embedded SmolLM2 model as a LangChain chat model.

It streams tokens, reports ``usage_metadata`` and never blocks the event loop: generation runs in
the engine's own process (``EngineClient`` talks to it). Each call tells the engine whose it is
(``api_key_id`` in the run's metadata, stamped by the server), so the engine's queue is shared
fairly between API keys. It keeps no per-call state of its own, so
one instance (or the copies ``configurable_fields`` makes per request) serves any number of
concurrent calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, closing
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from providers.engine_client import EngineClient
from providers.guard import GuardedStream
from providers.local_engine import Piece
from vocabulary.models import LOCAL_PROVIDER

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


def _to_chat_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]


def _caller(run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None) -> str | None:
    """The API key's id the server stamped on this run; None on an open server."""
    key_id = run_manager.metadata.get("api_key_id") if run_manager else None
    return str(key_id) if key_id else None


def _chunk(piece: Piece) -> ChatGenerationChunk:
    usage = None
    if piece.input_tokens or piece.output_tokens:
        usage = UsageMetadata(
            input_tokens=piece.input_tokens,
            output_tokens=piece.output_tokens,
            total_tokens=piece.input_tokens + piece.output_tokens,
        )
    if piece.finish_reason is None:
        return ChatGenerationChunk(message=AIMessageChunk(content=piece.text, usage_metadata=usage))
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            usage_metadata=usage,
            chunk_position="last",
            response_metadata={"finish_reason": piece.finish_reason},
        ),
        generation_info={"finish_reason": piece.finish_reason},
    )


class LocalChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: EngineClient = Field(exclude=True)
    model_name: str = "SmolLM2-135M-Instruct"
    temperature: float | None = 0.7
    max_tokens: int = 256

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider=LOCAL_PROVIDER,
            ls_model_name=self.model_name,
            ls_model_type="chat",
            ls_temperature=self.temperature,
            ls_max_tokens=self.max_tokens,
        )

    def _params(self, stop: list[str] | None, options: dict[str, Any]) -> dict[str, Any]:
        """The engine's parameters: this model's, with the request's own ``max_tokens`` (never above
        this model's), ``top_p`` and ``seed`` over them."""
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens, "stop": stop or []}
        if options.get("max_tokens"):
            params["max_tokens"] = min(int(options["max_tokens"]), self.max_tokens)
        params.update({name: options[name] for name in ("top_p", "seed") if options.get(name) is not None})
        return params

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        pieces = self.engine.stream(_to_chat_messages(messages), self._params(stop, kwargs), _caller(run_manager))
        with closing(pieces):
            for piece in pieces:
                chunk = _chunk(piece)
                if run_manager and piece.text:
                    run_manager.on_llm_new_token(piece.text, chunk=chunk)
                yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # Closed with this stream, not whenever it is collected: closing its connection is what
        # stops the generation inside the engine when the client hangs up.
        pieces = self.engine.astream(_to_chat_messages(messages), self._params(stop, kwargs), _caller(run_manager))
        async with aclosing(pieces):
            async for piece in pieces:
                chunk = _chunk(piece)
                if run_manager and piece.text:
                    await run_manager.on_llm_new_token(piece.text, chunk=chunk)
                yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))


class GuardedLocalChatModel(GuardedStream, LocalChatModel):
    """The local model behind the request deadline and injected faults. Its non-streaming calls
    are built from its stream, so guarding the stream guards both."""
