"""``PolicyApplied``: runs a chain with the model, prompt style and temperature that
``RequestPolicy`` chose for each question, and puts the choice and its reasons in the run
metadata (``routing``), so every call record says why its model answered.

It opens no run of its own: the wrapped chain's run stays the root, under the run id the host
gave it, and streaming passes straight through. Batches decide per input.

Its config schema names no default for the ids the policy decides: a value left out is the
policy's to choose, and a form that fills itself from the defaults (the playground) would
otherwise send them as if the person had chosen them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, cast

from langchain_core.messages import HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import BaseModel, ConfigDict, Field

from chains.config_schema import FormReadyConfig
from policy.request_policy import RequestPolicy
from vocabulary import MODEL_ID, STYLE_ID, TEMPERATURE_ID
from vocabulary.run_metadata import ROUTING


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# Validation keeps the chain's default (the ladders need one); only the published schema drops it.
_DECIDED_WHEN_LEFT_OUT = Field(json_schema_extra=_drop_default)


def _question_of(input: Any) -> str:
    """What the policy classifies: the question of a LangServe input, or the last user message of a
    conversation (the OpenAI-compatible door's input)."""
    if isinstance(input, dict):
        return str(input.get("question", ""))
    if isinstance(input, list):
        asked = [message.text for message in input if isinstance(message, HumanMessage)]
        return asked[-1] if asked else ""
    return str(input)


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
        specs = [spec for spec in self.chain.config_specs if not (self.force_auto and spec.id == MODEL_ID)]
        decided = {MODEL_ID, STYLE_ID, TEMPERATURE_ID} if self.policy.enabled else {MODEL_ID}
        return [
            spec._replace(
                annotation=Annotated[spec.annotation, _DECIDED_WHEN_LEFT_OUT],
                description=f"{(spec.description or spec.id).rstrip('.')}. Leave it out and the request policy picks.",
            )
            if spec.id in decided
            else spec
            for spec in specs
        ]

    def with_config(self, config: RunnableConfig | None = None, **kwargs: Any) -> Runnable[Any, Any]:
        # The host's binding (callbacks) must keep the form-ready config schema.
        return FormReadyConfig(bound=self, config=cast(RunnableConfig, {**(config or {}), **kwargs}), kwargs={})

    def _decided(self, input: Any, config: RunnableConfig | None) -> RunnableConfig:
        config = ensure_config(config)
        question = _question_of(input)
        configurable = dict(config.get("configurable") or {})
        metadata = dict(config.get("metadata") or {})
        decision = self.policy.decide(str(question), configurable, metadata, force_auto=self.force_auto)
        return {
            **config,
            "configurable": {**configurable, **decision.configurable},
            "metadata": {**metadata, ROUTING: decision.routing},
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
