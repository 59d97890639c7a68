"""``PromptedText``: a served chain's prompt, model and text parse as one run.

``prompt | model | StrOutputParser()`` is a run for the sequence and one for each step, each with
its callbacks and config copies and, on the async paths, a task of its own. The prompt's and the
parser's runs cost about 15 % of an invoke's server CPU (measured side by side: BENCHMARKS.md,
``framework_cpu.py``'s section), though one formats a string and the other reads an attribute.
Here the chain's run is the only one besides the model's: the prompt alternative the config chose
is formatted inline, and the model's message (or each streamed chunk) becomes its text inline. The
model (a ladder) runs as a child, as before, so monitoring, tracing and the callbacks see every
model call; a trace no longer shows a prompt step and a parser step, whose input and output are
the chain's and the model's.

Streams go through LangChain's stream plumbing, so ``astream_log`` and ``astream_events`` (the
playground's) see the chain's streamed output. As with a sequence, call options (``kwargs``) are
not passed to the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    patch_config,
)
from langchain_core.runnables.configurable import DynamicRunnable
from langchain_core.runnables.utils import ConfigurableFieldSpec, get_unique_config_specs
from pydantic import BaseModel, ConfigDict

from chains.prompts import BilingualPrompt, QuestionInput
from errors import ConfigurationError


def _text(output: Any) -> str:
    """What ``StrOutputParser`` makes of a model's message or chunk (or of a rung's text)."""
    return output.text if isinstance(output, BaseMessage) else str(output)


class PromptedText(RunnableSerializable[dict[str, Any], str]):
    """``prompt``: a ``BilingualPrompt`` or ``configurable_alternatives`` of them; ``model``: what
    answers the formatted prompt (a ladder, or the ``llm_model`` alternatives of ladders)."""

    prompt: Runnable[dict[str, Any], PromptValue]
    model: Runnable[Any, Any]

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def InputType(self) -> Any:  # noqa: N802 - LangChain's name
        return QuestionInput

    @property
    def OutputType(self) -> Any:  # noqa: N802 - LangChain's name
        return str

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        # Every BilingualPrompt takes the same input: no alternative need be chosen to tell it
        # (LangServe asks on every request).
        return QuestionInput

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return get_unique_config_specs([*self.prompt.config_specs, *self.model.config_specs])

    def _formatted(self, input: dict[str, Any], config: RunnableConfig) -> PromptValue:
        prompt: Any = self.prompt
        if isinstance(prompt, DynamicRunnable):
            prompt, _ = prompt.prepare(config)
        if not isinstance(prompt, BilingualPrompt):
            raise ConfigurationError(f"PromptedText formats BilingualPrompt alternatives, not {type(prompt).__name__}")
        return prompt.format_for(input)

    def invoke(self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any) -> str:
        config = ensure_config(config)
        run = get_callback_manager_for_config(config).on_chain_start(
            None, input, name=config.get("run_name") or self.get_name(), run_id=config.pop("run_id", None)
        )
        try:
            prompt = self._formatted(input, config)
            text = _text(self.model.invoke(prompt, patch_config(config, callbacks=run.get_child())))
        except BaseException as exc:
            run.on_chain_error(exc)
            raise
        run.on_chain_end(text)
        return text

    async def ainvoke(self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any) -> str:
        config = ensure_config(config)
        run = await get_async_callback_manager_for_config(config).on_chain_start(
            None, input, name=config.get("run_name") or self.get_name(), run_id=config.pop("run_id", None)
        )
        try:
            prompt = self._formatted(input, config)
            text = _text(await self.model.ainvoke(prompt, patch_config(config, callbacks=run.get_child())))
        except BaseException as exc:
            await run.on_chain_error(exc)
            raise
        await run.on_chain_end(text)
        return text

    def stream(self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[str]:
        yield from self._transform_stream_with_config(iter([input]), self._texts, config)

    async def astream(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[str]:
        async def only() -> AsyncIterator[dict[str, Any]]:
            yield input

        async for text in self._atransform_stream_with_config(only(), self._atexts, config):
            yield text

    def _texts(
        self, inputs: Iterator[dict[str, Any]], run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Iterator[str]:
        prompt = self._formatted(next(inputs), config)
        for chunk in self.model.stream(prompt, patch_config(config, callbacks=run_manager.get_child())):
            yield _text(chunk)

    async def _atexts(
        self,
        inputs: AsyncIterator[dict[str, Any]],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[str]:
        prompt = self._formatted(await anext(inputs), config)
        async for chunk in self.model.astream(prompt, patch_config(config, callbacks=run_manager.get_child())):
            yield _text(chunk)
