"""``UnconfiguredChatModel``: stands in for a provider that has no API key.

Building the real client would crash at start-up (ChatGoogleGenerativeAI refuses to exist
without a key) or hang on a doomed request; this one fails at once with ``NotConfigured``, which
the fallback ladder records and skips past.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from errors import NotConfigured


class UnconfiguredChatModel(BaseChatModel):
    provider: str
    model_name: str
    missing_setting: str
    temperature: float | None = 0.7

    @property
    def _llm_type(self) -> str:
        return "unconfigured"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider=self.provider, ls_model_name=self.model_name, ls_model_type="chat")

    def _fail(self) -> NoReturn:
        raise NotConfigured(f"{self.model_name} is not configured: set {self.missing_setting} to use it")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._fail()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._fail()

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        self._fail()

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        self._fail()
        yield  # pragma: no cover - makes this an async generator
