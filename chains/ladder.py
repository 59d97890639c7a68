"""``FallbackLadder``: try models in order, record why each one failed, answer from the first
that works, or raise ``AllRungsFailed`` listing every attempt.

Unlike ``Runnable.with_fallbacks`` it keeps each attempt's cause, refuses to fall back on the
caller's own mistakes (``Cause.BAD_REQUEST`` is raised at once), and a stream that fails after
part of the answer reached the client is not started over: the next rung is asked to continue it
from the text already sent (``chains.continuation``; ``StreamedAnswer`` keeps what went out and
drops what a continuation repeats), and each rung's part is reported to the host. A stream that
cannot be continued (tool calls, structured output, a content-policy refusal, continuation
switched off) or that no rung could continue raises ``StreamInterrupted``. With
``LadderPolicies`` it also:

- orders the rungs per request (ordered, cheapest or fastest first; the last rung stays last);
- skips a rung whose circuit breaker is open, at once (the last rung, the floor, is always tried);
- retries transient failures on the same rung with backoff, within the request's deadline;
- starts every model call inside the request's deadline scope, so calls are cut at it (see
  ``providers.guard``);
- on the async paths, holds each call's most cost on the caller's money budgets before making it
  (``SpendGate``: a budget that cannot cover it refuses the request, or skips the rung for a
  cheaper one), holds the call to the output it paid for, and settles what the call cost from its
  records (``CallCosts``) when the try ends;
- answers from the response cache when it has the answer (``AnswerCache``), and keeps fresh ones;
- when tracing is on, runs in a span of its own (``tracing.ladder_spans``), the parent of each
  model call's span, with every skip, retry and continuation on it.

Each rung runs as a child of the ladder's run, with ``ladder``, ``ladder_rung`` (0 is the first
choice) and ``alternative`` in its metadata so monitoring can tell a primary from a fallback.

One request's way down the ladder is a ``chains.trial.Trial``, and every decision on it is the
trial's; the rungs and their deployments are ``chains.rungs``. The four entry points (``invoke``,
``ainvoke``, ``stream``, ``astream``) only make the calls, and do what the trial decided; the
async ones also share breaker verdicts with other replicas. The ladder itself keeps no state
between calls.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn, cast

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    merge_configs,
    patch_config,
)
from langchain_core.runnables.utils import ConfigurableFieldSpec, get_unique_config_specs
from pydantic import BaseModel, ConfigDict

from chains.rungs import Rung
from chains.serving_report import Served, report_cache, report_served, report_streaming
from chains.trial import Trial, Try, Verdict
from errors import BudgetExhausted
from resilience.breaker import CircuitBreaker
from resilience.deadline import deadline_scope
from resilience.ladder_policies import CacheLookup, LadderPolicies
from resilience.output_cap import output_cap_scope
from vocabulary.run_metadata import (
    ALTERNATIVE,
    ANSWER_SO_FAR,
    BREAKER_STATE,
    CALL_TICKET,
    CONTEXT_WINDOW,
    CONTINUES,
    DEPLOYMENT,
    LADDER,
    LADDER_RUNG,
    PRICE_KEY,
    PROVIDER_KEY,
    ROOT_RUN_ID,
)

_END: Any = object()  # end of a rung's stream


class FallbackLadder(RunnableSerializable[Any, Any]):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    ladder: str
    rungs: list[Rung]
    resilience: LadderPolicies | None = None

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

    def _rung_config(self, config: RunnableConfig, trial: Trial, attempt: Try, run_manager: Any) -> RunnableConfig:
        metadata: dict[str, Any] = {
            LADDER: self.ladder,
            LADDER_RUNG: attempt.position,
            ALTERNATIVE: attempt.spec.alternative,
            DEPLOYMENT: attempt.spec.endpoint,
        }
        if attempt.spec.price_key is not None:
            metadata[PRICE_KEY] = attempt.spec.price_key
        if attempt.spec.context_window is not None:
            metadata[CONTEXT_WINDOW] = attempt.spec.context_window
        if attempt.key_name is not None:
            metadata[PROVIDER_KEY] = attempt.key_name
        if attempt.ticket is not None:
            metadata[CALL_TICKET] = attempt.ticket
        if attempt.breaker is not None and trial.traced:
            metadata[BREAKER_STATE] = attempt.breaker.state.value
        if attempt.form is not None:
            # The gate and the keyword filter judge the whole answer; the record says whose it continues.
            metadata[ANSWER_SO_FAR] = trial.answer.text
            metadata[CONTINUES] = {"model": trial.continued_model(), "at": len(trial.answer.text), "form": attempt.form}
        return patch_config(merge_configs(config, {"metadata": metadata}), callbacks=run_manager.get_child())

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

    # Doing what the trial decided. Sync and async differ only in their I/O: the async paths (the
    # ones LangServe serves) also share breaker verdicts with other replicas.

    @staticmethod
    def _fail(run_manager: CallbackManagerForChainRun, error: Exception, cause: Exception | None = None) -> NoReturn:
        run_manager.on_chain_error(error)
        if cause is None:
            raise error
        raise error from cause

    @staticmethod
    async def _afail(
        run_manager: AsyncCallbackManagerForChainRun, error: Exception, cause: Exception | None = None
    ) -> NoReturn:
        await run_manager.on_chain_error(error)
        if cause is None:
            raise error
        raise error from cause

    def _follow(self, verdict: Verdict, run_manager: CallbackManagerForChainRun, exc: Exception) -> None:
        """After a failed try: end the run with the verdict's error, or wait before a retry."""
        if verdict.error is not None:
            self._fail(run_manager, verdict.error, exc)
        if verdict.wait is not None:
            self._sleep(verdict.wait)

    async def _afollow(
        self, attempt: Try, verdict: Verdict, run_manager: AsyncCallbackManagerForChainRun, exc: Exception
    ) -> None:
        """``_follow``, telling the other replicas first if the try changed the breaker."""
        if not verdict.rejected:
            await self._push(attempt.breaker)
        if verdict.error is not None:
            await self._afail(run_manager, verdict.error, exc)
        if verdict.wait is not None:
            await self._asleep(verdict.wait)

    async def _aadmit(self, trial: Trial, attempt: Try) -> bool:
        """``trial.admit``, having taken on another replica's verdict on a new rung's breaker."""
        if attempt.tries == 1:
            await self._pull(attempt.breaker)
        return trial.admit(attempt)

    async def _ahold(
        self,
        trial: Trial,
        attempt: Try,
        asked: Any,
        options: dict[str, Any],
        run_manager: AsyncCallbackManagerForChainRun,
    ) -> bool:
        """Hold the most ``attempt`` can cost on the caller's budgets; False: a budget that
        downgrades could not cover it, and the ladder moves on (one that refuses ends the run)."""
        gate = self.resilience.spend if self.resilience is not None else None
        if gate is None:
            return True
        try:
            attempt.hold = await gate.hold(trial.metadata, *trial.spend_ask(attempt, asked, options))
        except BudgetExhausted as refused:
            verdict = trial.over_budget(attempt, refused)
            if verdict.error is not None:
                await self._afail(run_manager, verdict.error)
            return False
        return True

    async def _alookup(
        self, trial: Trial, input: Any, config: RunnableConfig, options: dict[str, Any]
    ) -> CacheLookup | None:
        """The response cache's word on this request (None: caching is off for it)."""
        cache = self.resilience.answers if self.resilience is not None else None
        if cache is None:
            return None
        with trial.span.current():  # a hit's record is the ladder span's
            lookup = await cache.lookup(self.ladder, input, config, options)
        if lookup is not None:
            report_cache(lookup.result)
            trial.span.cache(lookup.result)
            if lookup.result == "hit":
                trial.span.served(lookup.model, 0, 0)
        return lookup

    def _from_cache(self, lookup: CacheLookup, config: RunnableConfig) -> Served:
        run_id = (config.get("metadata") or {}).get(ROOT_RUN_ID)
        return Served(self.ladder, 0, lookup.alternative, lookup.model, tries=0, run_id=run_id)

    def _remember(self, lookup: CacheLookup | None, trial: Trial, attempt: Try, output: Any) -> None:
        """Keep a fresh answer for the next identical request, when the cache may."""
        cache = self.resilience.answers if self.resilience is not None else None
        if cache is not None and lookup is not None and lookup.store:
            spec = attempt.spec
            cache.remember(lookup, output, model=spec.model, alternative=spec.alternative, cost=trial.cost)

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def _asleep(self, seconds: float) -> None:
        if self.resilience is not None:
            await self.resilience.sleep(seconds)

    async def _pull(self, breaker: CircuitBreaker | None) -> None:
        if self.resilience is not None:
            await self.resilience.pull(breaker)

    async def _push(self, breaker: CircuitBreaker | None) -> None:
        if self.resilience is not None:
            await self.resilience.push(breaker)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        trial = Trial(self, input, config)
        with trial.span:
            config, run_manager = self._start(input, config)
            for attempt in trial.tries():
                if not trial.admit(attempt):
                    continue
                try:
                    with deadline_scope(trial.deadline.at), trial.span.current():
                        output = attempt.runnable.invoke(
                            input, self._rung_config(config, trial, attempt, run_manager), **kwargs
                        )
                except Exception as exc:
                    self._follow(trial.failed(attempt, exc), run_manager, exc)
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(attempt)
                    raise
                else:
                    trial.succeeded(attempt)
                    run_manager.on_chain_end(output)
                    return output
            self._fail(run_manager, trial.exhausted())

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        trial = Trial(self, input, config)
        with trial.span:
            config, run_manager = await self._astart(input, config)
            lookup = await self._alookup(trial, input, config, kwargs)
            if lookup is not None and lookup.result == "hit":
                report_served(self._from_cache(lookup, config))
                await run_manager.on_chain_end(lookup.output)
                return lookup.output
            for attempt in trial.tries():
                if not await self._aadmit(trial, attempt):
                    continue
                if not await self._ahold(trial, attempt, input, kwargs, run_manager):
                    continue
                try:
                    with deadline_scope(trial.deadline.at), output_cap_scope(attempt.cap), trial.span.current():
                        output = await attempt.runnable.ainvoke(
                            input, self._rung_config(config, trial, attempt, run_manager), **kwargs
                        )
                except Exception as exc:
                    await self._afollow(attempt, trial.failed(attempt, exc), run_manager, exc)
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(attempt)
                    raise
                else:
                    trial.succeeded(attempt)
                    self._remember(lookup, trial, attempt, output)
                    await self._push(attempt.breaker)
                    await run_manager.on_chain_end(output)
                    return output
            await self._afail(run_manager, trial.exhausted())

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        trial = Trial(self, input, config)
        with trial.span:
            config, run_manager = self._start(input, config)
            for attempt in trial.tries():
                if not trial.admit(attempt):
                    continue
                asked = trial.request(attempt, input)
                try:
                    rung_config = self._rung_config(config, trial, attempt, run_manager)
                    chunks = iter(attempt.runnable.stream(asked, rung_config, **kwargs))
                    # The model's stream starts, and reads the deadline, on the first chunk.
                    with deadline_scope(trial.deadline.at), trial.span.current():
                        chunk = next(chunks, _END)
                    while chunk is not _END:
                        out = trial.answer.feed(chunk)
                        if out is not None:
                            yield out
                        chunk = next(chunks, _END)
                    out = trial.answer.finish()
                    if out is not None:
                        yield out
                except Exception as exc:
                    self._follow(trial.failed(attempt, exc), run_manager, exc)
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(attempt)
                    raise
                else:
                    trial.succeeded(attempt)
                    run_manager.on_chain_end(trial.answer.final)
                    return
            self._fail(run_manager, trial.exhausted())

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        trial = Trial(self, input, config)
        with trial.span:
            config, run_manager = await self._astart(input, config)
            lookup = await self._alookup(trial, input, config, kwargs)
            if lookup is not None and lookup.result == "hit":
                served = self._from_cache(lookup, config)
                report_streaming(served)
                for piece in lookup.chunks():
                    yield piece
                report_served(served)
                await run_manager.on_chain_end(lookup.output)
                return
            for attempt in trial.tries():
                if not await self._aadmit(trial, attempt):
                    continue
                asked = trial.request(attempt, input)
                if not await self._ahold(trial, attempt, asked, kwargs, run_manager):
                    continue
                try:
                    rung_config = self._rung_config(config, trial, attempt, run_manager)
                    achunks = aiter(attempt.runnable.astream(asked, rung_config, **kwargs))
                    # The scope must not span a yield (the consumer may resume us in another
                    # context); the model's stream starts, and reads the deadline and cap, on the first chunk.
                    with deadline_scope(trial.deadline.at), output_cap_scope(attempt.cap), trial.span.current():
                        chunk = await anext(achunks, _END)
                    if chunk is not _END and trial.answer.final is None:
                        report_streaming(trial.serving(attempt))
                    while chunk is not _END:
                        out = trial.answer.feed(chunk)
                        if out is not None:
                            yield out
                        chunk = await anext(achunks, _END)
                    out = trial.answer.finish()
                    if out is not None:
                        yield out
                except Exception as exc:
                    await self._afollow(attempt, trial.failed(attempt, exc), run_manager, exc)
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(attempt)
                    raise
                else:
                    trial.succeeded(attempt)
                    self._remember(lookup, trial, attempt, trial.answer.final)
                    await self._push(attempt.breaker)
                    await run_manager.on_chain_end(trial.answer.final)
                    return
            await self._afail(run_manager, trial.exhausted())
