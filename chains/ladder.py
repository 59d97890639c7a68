"""``FallbackLadder``: try models in order, record why each one failed, answer from the first
that works, or raise ``AllRungsFailed`` listing every attempt.

Unlike ``Runnable.with_fallbacks`` it keeps each attempt's cause, refuses to fall back on the
caller's own mistakes (``Cause.BAD_REQUEST`` is raised at once), and when streaming moves on only
while nothing has reached the client yet. Each rung runs as a child of the ladder's run, with
``ladder``, ``ladder_rung`` and ``alternative`` in its metadata so monitoring can tell a primary
from a fallback. The ladder keeps no state between calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    merge_configs,
    patch_config,
)
from langchain_core.runnables.utils import ConfigurableFieldSpec, get_unique_config_specs
from pydantic import BaseModel, ConfigDict

from chains.outcomes import Served, current_outcomes
from errors import AllRungsFailed, Attempt, RequestError, classify, describe, retry_after_of
from providers.catalog import ModelSpec


@dataclass(frozen=True)
class Rung:
    spec: ModelSpec
    runnable: Runnable[Any, Any]


class FallbackLadder(RunnableSerializable[Any, Any]):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    ladder: str
    rungs: list[Rung]

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return name or f"FallbackLadder[{self.ladder}]"

    @property
    def InputType(self) -> Any:  # noqa: N802 - LangChain's name
        return self.rungs[0].runnable.InputType

    @property
    def OutputType(self) -> Any:  # noqa: N802 - LangChain's name
        return self.rungs[0].runnable.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return cast(type[BaseModel], self.rungs[0].runnable.get_input_schema(config))

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return cast(type[BaseModel], self.rungs[0].runnable.get_output_schema(config))

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return get_unique_config_specs(spec for rung in self.rungs for spec in rung.runnable.config_specs)

    def _rung_config(self, config: RunnableConfig, index: int, run_manager: Any) -> RunnableConfig:
        rung = self.rungs[index]
        tagged = merge_configs(
            config,
            {"metadata": {"ladder": self.ladder, "ladder_rung": index, "alternative": rung.spec.alternative}},
        )
        return patch_config(tagged, callbacks=run_manager.get_child())

    def _after_failure(self, index: int, exc: Exception, attempts: list[Attempt]) -> RequestError | None:
        """Record a failed rung and return None to move on, or the error to raise when the caller
        is at fault (a 422, rather than blaming every other model too)."""
        cause = classify(exc)
        spec = self.rungs[index].spec
        if not cause.is_callers_fault:
            attempts.append(
                Attempt(
                    rung=index,
                    alternative=spec.alternative,
                    model=spec.model,
                    provider=spec.provider,
                    cause=cause,
                    detail=describe(exc),
                    retry_after=retry_after_of(exc),
                )
            )
            return None
        if isinstance(exc, RequestError):
            rejected = exc
        else:
            rejected = RequestError(f"{spec.model} rejected the request as invalid ({describe(exc)}); change the input")
        outcomes = current_outcomes()
        if outcomes is not None:
            outcomes.add_failure(rejected)
        return rejected

    def _served(self, index: int) -> None:
        outcomes = current_outcomes()
        if outcomes is not None:
            spec = self.rungs[index].spec
            outcomes.add_served(Served(self.ladder, index, spec.alternative, spec.model))

    def _exhausted(self, attempts: list[Attempt]) -> AllRungsFailed:
        error = AllRungsFailed(self.ladder, attempts)
        outcomes = current_outcomes()
        if outcomes is not None:
            outcomes.add_failure(error)
        return error

    def _start(self, input: Any, config: RunnableConfig | None) -> tuple[RunnableConfig, CallbackManagerForChainRun]:
        config = ensure_config(config)
        manager = get_callback_manager_for_config(config)
        run_manager = manager.on_chain_start(None, input, name=self.get_name(), run_id=config.pop("run_id", None))
        return config, run_manager

    async def _astart(
        self, input: Any, config: RunnableConfig | None
    ) -> tuple[RunnableConfig, AsyncCallbackManagerForChainRun]:
        config = ensure_config(config)
        manager = get_async_callback_manager_for_config(config)
        run_manager = await manager.on_chain_start(None, input, name=self.get_name(), run_id=config.pop("run_id", None))
        return config, run_manager

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, run_manager = self._start(input, config)
        attempts: list[Attempt] = []
        for index, rung in enumerate(self.rungs):
            try:
                output = rung.runnable.invoke(input, self._rung_config(config, index, run_manager))
            except Exception as exc:
                rejected = self._after_failure(index, exc, attempts)
                if rejected is None:
                    continue
                run_manager.on_chain_error(rejected)
                raise rejected from exc
            self._served(index)
            run_manager.on_chain_end(output)
            return output
        error = self._exhausted(attempts)
        run_manager.on_chain_error(error)
        raise error

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, run_manager = await self._astart(input, config)
        attempts: list[Attempt] = []
        for index, rung in enumerate(self.rungs):
            try:
                output = await rung.runnable.ainvoke(input, self._rung_config(config, index, run_manager))
            except Exception as exc:
                rejected = self._after_failure(index, exc, attempts)
                if rejected is None:
                    continue
                await run_manager.on_chain_error(rejected)
                raise rejected from exc
            self._served(index)
            await run_manager.on_chain_end(output)
            return output
        error = self._exhausted(attempts)
        await run_manager.on_chain_error(error)
        raise error

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        config, run_manager = self._start(input, config)
        attempts: list[Attempt] = []
        for index, rung in enumerate(self.rungs):
            final: Any = None
            try:
                for chunk in rung.runnable.stream(input, self._rung_config(config, index, run_manager)):
                    final = chunk if final is None else final + chunk
                    yield chunk
            except Exception as exc:
                if final is not None:  # a chunk already reached the caller: no one can take over
                    run_manager.on_chain_error(exc)
                    raise
                rejected = self._after_failure(index, exc, attempts)
                if rejected is None:
                    continue
                run_manager.on_chain_error(rejected)
                raise rejected from exc
            self._served(index)
            run_manager.on_chain_end(final)
            return
        error = self._exhausted(attempts)
        run_manager.on_chain_error(error)
        raise error

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        config, run_manager = await self._astart(input, config)
        attempts: list[Attempt] = []
        for index, rung in enumerate(self.rungs):
            final: Any = None
            try:
                async for chunk in rung.runnable.astream(input, self._rung_config(config, index, run_manager)):
                    final = chunk if final is None else final + chunk
                    yield chunk
            except Exception as exc:
                if final is not None:
                    await run_manager.on_chain_error(exc)
                    raise
                rejected = self._after_failure(index, exc, attempts)
                if rejected is None:
                    continue
                await run_manager.on_chain_error(rejected)
                raise rejected from exc
            self._served(index)
            await run_manager.on_chain_end(final)
            return
        error = self._exhausted(attempts)
        await run_manager.on_chain_error(error)
        raise error
