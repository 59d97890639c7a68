"""``FallbackLadder``: try models in order, record why each one failed, answer from the first
that works, or raise ``AllRungsFailed`` listing every attempt.

Unlike ``Runnable.with_fallbacks`` it keeps each attempt's cause, refuses to fall back on the
caller's own mistakes (``Cause.BAD_REQUEST`` is raised at once), and when streaming moves on only
while nothing has reached the client yet; a stream that fails after that raises
``StreamInterrupted``. With ``LadderPolicies`` it also:

- orders the rungs per request (ordered, cheapest or fastest first; the last rung stays last);
- skips a rung whose circuit breaker is open, at once (the last rung, the floor, is always tried);
- retries transient failures on the same rung with backoff, within the request's deadline;
- starts every model call inside the request's deadline scope, so calls are cut at it (see
  ``providers.guard``).

Each rung runs as a child of the ladder's run, with ``ladder``, ``ladder_rung`` (0 is the first
choice) and ``alternative`` in its metadata so monitoring can tell a primary from a fallback.
Per-request state lives in a ``_Trial``; the ladder itself keeps none between calls.
"""

from __future__ import annotations

import time
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
from errors import (
    AllRungsFailed,
    Attempt,
    Cause,
    ModelNotAllowed,
    RequestError,
    StreamInterrupted,
    classify,
    describe,
    retry_after_of,
)
from resilience.breaker import BreakerState, CircuitBreaker
from resilience.deadline import Deadline, deadline_scope
from resilience.ladder_policies import LadderPolicies
from vocabulary.models import ModelSpec

_END: Any = object()  # end of a rung's stream


def _account(breaker: CircuitBreaker | None, cause: Cause, call: int | None) -> None:
    """Count a failure against the endpoint's breaker only when it says the endpoint is unwell."""
    if breaker is None:
        return
    if cause.counts_against_breaker:
        breaker.record_failure(cause.value, call)
    else:
        breaker.release(call)


def _allowed_rungs(ladder: FallbackLadder, metadata: dict[str, Any]) -> list[Rung]:
    """The rungs the caller's tier may use (all of them when the host stamped no ``access``)."""
    access = metadata.get("access")
    if not isinstance(access, dict):
        return list(ladder.rungs)
    rungs = [rung for rung in ladder.rungs if rung.spec.alternative in access["models"]]
    if not rungs:
        error = ModelNotAllowed(
            f"the {metadata.get('tier')} tier may use none of the '{ladder.ladder}' ladder's models "
            f"({', '.join(r.spec.alternative for r in ladder.rungs)}); allowed: {', '.join(access['models'])}",
            details={"tier": metadata.get("tier"), "allowed": list(access["models"])},
        )
        _Trial._report(error)
        raise error
    return rungs


@dataclass(frozen=True)
class Rung:
    spec: ModelSpec
    runnable: Runnable[Any, Any]


class _Trial:
    """One request's way down the ladder: its order, deadline, breakers and failed attempts."""

    def __init__(self, ladder: FallbackLadder, config: RunnableConfig | None):
        self.ladder = ladder
        self.resilience = ladder.resilience
        self.attempts: list[Attempt] = []
        # Real monotonic time: the models' guards read the same clock (see resilience.deadline).
        self.deadline = Deadline(self.resilience.deadline_s if self.resilience else None)
        rungs = _allowed_rungs(ladder, (config or {}).get("metadata") or {})
        specs = [rung.spec for rung in rungs]
        order = self.resilience.order(specs) if self.resilience else list(range(len(specs)))
        self.rungs = [rungs[i] for i in order]
        self.call: int | None = None  # the breaker's ticket for the try in flight

    def breaker(self, position: int) -> CircuitBreaker | None:
        if self.resilience is None or position == len(self.rungs) - 1:  # the floor is always tried
            return None
        spec = self.rungs[position].spec
        return self.resilience.breakers.get(f"{spec.provider}:{spec.model}")

    def admit(self, position: int, breaker: CircuitBreaker | None) -> bool:
        """Whether this rung may be tried now; if not, the skip is recorded as an attempt."""
        if self.deadline.expired:
            self._skip(position, Cause.TIMEOUT, "the request deadline passed before this model was tried")
            return False
        if breaker is not None and not breaker.allow():
            self._skip(position, Cause.BREAKER_OPEN, f"circuit breaker open: {breaker.last_reason}", breaker.retry_in())
            return False
        return True

    def begin(self, breaker: CircuitBreaker | None) -> None:
        """A try starts: take its ticket, so the breaker judges it in the order it started."""
        self.call = None if breaker is None else breaker.begin()

    def release(self, breaker: CircuitBreaker | None) -> None:
        """The try ended without a verdict (cancelled, or the client left)."""
        if breaker is not None:
            breaker.release(self.call)

    def failed(self, position: int, breaker: CircuitBreaker | None, exc: Exception, tries: int) -> float | None:
        """Account for a failed try. Returns the seconds to wait before retrying this rung, or
        None after recording the attempt (move on). Raises when the caller is at fault."""
        cause = classify(exc)
        spec = self.rungs[position].spec
        _account(breaker, cause, self.call)
        if cause.is_callers_fault:
            raise self._rejected(spec, exc)
        retry_after = retry_after_of(exc)
        wait = None
        if self.resilience is not None and (breaker is None or breaker.state is BreakerState.CLOSED):
            wait = self.resilience.retry.wait_before_retry(cause, tries, retry_after, self.deadline.time_left())
        if wait is None:
            self.attempts.append(
                Attempt(position, spec.alternative, spec.model, spec.provider, cause, describe(exc), retry_after, tries)
            )
        return wait

    def succeeded(self, position: int, breaker: CircuitBreaker | None) -> None:
        if breaker is not None:
            breaker.record_success(self.call)
        outcomes = current_outcomes()
        if outcomes is not None:
            spec = self.rungs[position].spec
            outcomes.add_served(Served(self.ladder.ladder, position, spec.alternative, spec.model))

    def interrupted(self, position: int, breaker: CircuitBreaker | None, exc: Exception) -> StreamInterrupted:
        """A stream failed after text reached the client: nobody can take over now."""
        cause = classify(exc)
        _account(breaker, cause, self.call)
        spec = self.rungs[position].spec
        error = StreamInterrupted(spec.model, cause, describe(exc))
        self._report(error)
        return error

    def exhausted(self) -> AllRungsFailed:
        error = AllRungsFailed(self.ladder.ladder, self.attempts)
        self._report(error)
        return error

    def _skip(self, position: int, cause: Cause, detail: str, retry_after: float | None = None) -> None:
        spec = self.rungs[position].spec
        self.attempts.append(
            Attempt(position, spec.alternative, spec.model, spec.provider, cause, detail, retry_after, tries=0)
        )

    def _rejected(self, spec: ModelSpec, exc: Exception) -> RequestError:
        if isinstance(exc, RequestError):
            rejected = exc
        else:
            rejected = RequestError(f"{spec.model} rejected the request as invalid ({describe(exc)}); change the input")
        self._report(rejected)
        return rejected

    @staticmethod
    def _report(error: AllRungsFailed | RequestError | StreamInterrupted) -> None:
        outcomes = current_outcomes()
        if outcomes is not None:
            outcomes.add_failure(error)


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

    def _rung_config(self, config: RunnableConfig, trial: _Trial, position: int, run_manager: Any) -> RunnableConfig:
        metadata = {
            "ladder": self.ladder,
            "ladder_rung": position,
            "alternative": trial.rungs[position].spec.alternative,
        }
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

    @staticmethod
    def _failed(
        trial: _Trial, position: int, breaker: CircuitBreaker | None, exc: Exception, tries: int, run_manager: Any
    ) -> float | None:
        """``_Trial.failed``, ending the run when the caller is at fault."""
        try:
            return trial.failed(position, breaker, exc, tries)
        except RequestError as rejected:
            run_manager.on_chain_error(rejected)
            raise rejected from exc

    async def _afailed(
        self, trial: _Trial, position: int, breaker: CircuitBreaker | None, exc: Exception, tries: int, run_manager: Any
    ) -> float | None:
        """``_Trial.failed``, ending the run when the caller is at fault; then tells the other
        replicas if the breaker changed."""
        try:
            wait = trial.failed(position, breaker, exc, tries)
        except RequestError as rejected:
            await run_manager.on_chain_error(rejected)
            raise rejected from exc
        await self._push(breaker)
        return wait

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        trial = _Trial(self, config)
        config, run_manager = self._start(input, config)
        for position, rung in enumerate(trial.rungs):
            breaker = trial.breaker(position)
            if not trial.admit(position, breaker):
                continue
            tries = 0
            while True:
                tries += 1
                trial.begin(breaker)
                try:
                    with deadline_scope(trial.deadline.at):
                        output = rung.runnable.invoke(input, self._rung_config(config, trial, position, run_manager))
                except Exception as exc:
                    wait = self._failed(trial, position, breaker, exc, tries, run_manager)
                    if wait is None:
                        break
                    self._sleep(wait)
                    continue
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(breaker)
                    raise
                trial.succeeded(position, breaker)
                run_manager.on_chain_end(output)
                return output
        error = trial.exhausted()
        run_manager.on_chain_error(error)
        raise error

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        trial = _Trial(self, config)
        config, run_manager = await self._astart(input, config)
        for position, rung in enumerate(trial.rungs):
            breaker = trial.breaker(position)
            await self._pull(breaker)
            if not trial.admit(position, breaker):
                continue
            tries = 0
            while True:
                tries += 1
                trial.begin(breaker)
                try:
                    with deadline_scope(trial.deadline.at):
                        rung_config = self._rung_config(config, trial, position, run_manager)
                        output = await rung.runnable.ainvoke(input, rung_config)
                except Exception as exc:
                    wait = await self._afailed(trial, position, breaker, exc, tries, run_manager)
                    if wait is None:
                        break
                    await self._asleep(wait)
                    continue
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(breaker)
                    raise
                trial.succeeded(position, breaker)
                await self._push(breaker)
                await run_manager.on_chain_end(output)
                return output
        error = trial.exhausted()
        await run_manager.on_chain_error(error)
        raise error

    async def _asleep(self, seconds: float) -> None:
        if self.resilience is not None:
            await self.resilience.sleep(seconds)

    # Replicas share breaker verdicts on the async paths only (the ones LangServe serves).
    async def _pull(self, breaker: CircuitBreaker | None) -> None:
        if self.resilience is not None:
            await self.resilience.pull(breaker)

    async def _push(self, breaker: CircuitBreaker | None) -> None:
        if self.resilience is not None:
            await self.resilience.push(breaker)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        trial = _Trial(self, config)
        config, run_manager = self._start(input, config)
        for position, rung in enumerate(trial.rungs):
            breaker = trial.breaker(position)
            if not trial.admit(position, breaker):
                continue
            tries = 0
            while True:
                tries += 1
                final: Any = None
                trial.begin(breaker)
                try:
                    chunks = iter(rung.runnable.stream(input, self._rung_config(config, trial, position, run_manager)))
                    with deadline_scope(trial.deadline.at):  # the model's stream starts on the first chunk
                        chunk = next(chunks, _END)
                    while chunk is not _END:
                        final = chunk if final is None else final + chunk
                        yield chunk
                        chunk = next(chunks, _END)
                except Exception as exc:
                    if final is not None:
                        interrupted = trial.interrupted(position, breaker, exc)
                        run_manager.on_chain_error(interrupted)
                        raise interrupted from exc
                    wait = self._failed(trial, position, breaker, exc, tries, run_manager)
                    if wait is None:
                        break
                    self._sleep(wait)
                    continue
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(breaker)
                    raise
                trial.succeeded(position, breaker)
                run_manager.on_chain_end(final)
                return
        error = trial.exhausted()
        run_manager.on_chain_error(error)
        raise error

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        trial = _Trial(self, config)
        config, run_manager = await self._astart(input, config)
        for position, rung in enumerate(trial.rungs):
            breaker = trial.breaker(position)
            await self._pull(breaker)
            if not trial.admit(position, breaker):
                continue
            tries = 0
            while True:
                tries += 1
                final: Any = None
                trial.begin(breaker)
                try:
                    rung_config = self._rung_config(config, trial, position, run_manager)
                    achunks = aiter(rung.runnable.astream(input, rung_config))
                    # The scope must not span a yield (the consumer may resume us in another
                    # context); the model's stream starts, and reads the deadline, on the first chunk.
                    with deadline_scope(trial.deadline.at):
                        chunk = await anext(achunks, _END)
                    while chunk is not _END:
                        final = chunk if final is None else final + chunk
                        yield chunk
                        chunk = await anext(achunks, _END)
                except Exception as exc:
                    if final is not None:
                        interrupted = trial.interrupted(position, breaker, exc)
                        await self._push(breaker)
                        await run_manager.on_chain_error(interrupted)
                        raise interrupted from exc
                    wait = await self._afailed(trial, position, breaker, exc, tries, run_manager)
                    if wait is None:
                        break
                    await self._asleep(wait)
                    continue
                except BaseException:  # cancelled, or the client left: proves nothing either way
                    trial.release(breaker)
                    raise
                trial.succeeded(position, breaker)
                await self._push(breaker)
                await run_manager.on_chain_end(final)
                return
        error = trial.exhausted()
        await run_manager.on_chain_error(error)
        raise error
