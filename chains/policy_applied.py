"""``PolicyApplied``: runs a chain with the model, prompt style and temperature that
``RequestPolicy`` chose for each question, and puts the choice and its reasons in the run
metadata (``routing``), so every call record says why its model answered.

It opens no run of its own: the wrapped chain's run stays the root, under the run id the host
gave it, and streaming passes straight through. Batches decide per input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import BaseModel, ConfigDict

from policy.request_policy import MODEL_ID, RequestPolicy


class PolicyApplied(RunnableSerializable[Any, Any]):
    chain: Runnable[Any, Any]
    policy: RequestPolicy
    force_auto: bool = False  # /adaptive: the router always picks the model

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return self.chain.get_name(suffix, name=name)

    @property
    def InputType(self) -> Any:  # noqa: N802 - LangChain's name
        return self.chain.InputType

    @property
    def OutputType(self) -> Any:  # noqa: N802 - LangChain's name
        return self.chain.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return cast(type[BaseModel], self.chain.get_input_schema(config))

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return cast(type[BaseModel], self.chain.get_output_schema(config))

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        specs = self.chain.config_specs
        return [spec for spec in specs if spec.id != MODEL_ID] if self.force_auto else specs

    def _decided(self, input: Any, config: RunnableConfig | None) -> RunnableConfig:
        config = ensure_config(config)
        question = input.get("question", "") if isinstance(input, dict) else str(input)
        configurable = dict(config.get("configurable") or {})
        metadata = dict(config.get("metadata") or {})
        decision = self.policy.decide(str(question), configurable, metadata, force_auto=self.force_auto)
        return {
            **config,
            "configurable": {**configurable, **decision.configurable},
            "metadata": {**metadata, "routing": decision.routing},
        }

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.chain.invoke(input, self._decided(input, config), **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self.chain.ainvoke(input, self._decided(input, config), **kwargs)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.chain.stream(input, self._decided(input, config), **kwargs)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async for chunk in self.chain.astream(input, self._decided(input, config), **kwargs):
            yield chunk
