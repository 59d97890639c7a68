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
  ``providers.guard``).

Each rung runs as a child of the ladder's run, with ``ladder``, ``ladder_rung`` (0 is the first
choice) and ``alternative`` in its metadata so monitoring can tell a primary from a fallback.

One request's way down the ladder is a ``_Trial``, and every decision on it is the trial's: which
rungs the caller may use and in what order, which tries to make (``tries``), whether the breaker
and the deadline admit one (``admit``), what a failure means (``failed``: end the run, retry the
rung after a wait, or fall to the next rung; whether it counts against the breaker) and the error
when every rung failed (``exhausted``). The four entry points (``invoke``, ``ainvoke``, ``stream``,
``astream``) only make the calls, and do what the trial decided; the async ones also share breaker
verdicts with other replicas. The ladder itself keeps no state between calls.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, cast

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

from chains.continuation import PREFILL, USER_TURN, Form, continuation_input, other_form, prompt_text
from chains.serving_report import (
    Contribution,
    Served,
    report_contribution,
    report_failure,
    report_served,
    report_streaming,
)
from chains.streamed_answer import StreamedAnswer
from errors import (
    AllRungsFailed,
    Attempt,
    Cause,
    ContentBlocked,
    ContentRefused,
    ModelNotAllowed,
    RequestError,
    StreamInterrupted,
    classify,
    describe,
    retry_after_of,
)
from policy.limits import estimate_prompt_tokens
from policy.request_policy import Access
from resilience.breaker import BreakerState, CircuitBreaker
from resilience.deadline import Deadline, deadline_scope
from resilience.ladder_policies import LadderPolicies
from vocabulary.models import PREFILL as CAN_PREFILL
from vocabulary.models import STRUCTURED_OUTPUT, ModelSpec
from vocabulary.run_metadata import (
    ALTERNATIVE,
    ANSWER_SO_FAR,
    CONTEXT_WINDOW,
    CONTINUES,
    DEPLOYMENT,
    LADDER,
    LADDER_RUNG,
    NEEDS,
    PRICE_KEY,
    PROVIDER_KEY,
    ROOT_RUN_ID,
)

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
    """The rungs the caller's tier may use (all of them when the host stamped no access)."""
    access = Access.from_metadata(metadata)
    if access is None:
        return list(ladder.rungs)
    rungs = [rung for rung in ladder.rungs if rung.spec.alternative in access.models]
    if not rungs:
        raise report_failure(
            ModelNotAllowed(
                f"the {access.tier} tier may use none of the '{ladder.ladder}' ladder's models "
                f"({', '.join(r.spec.alternative for r in ladder.rungs)}); allowed: {', '.join(access.models)}",
                details={"tier": access.tier, "allowed": list(access.models)},
            )
        )
    return rungs


@dataclass(frozen=True)
class Deployment:
    """One endpoint serving an alternative: its spec (model, limits, window) and chat model; with
    several API keys, a chat model per key (the variable's name and the model), taken in turn."""

    spec: ModelSpec
    runnable: Runnable[Any, Any]
    keys: tuple[tuple[str, Runnable[Any, Any]], ...] = ()

    def then(self, step: Runnable[Any, Any]) -> Deployment:
        keys = tuple((name, runnable | step) for name, runnable in self.keys)
        return Deployment(self.spec, self.runnable | step, keys)


class DeploymentPool:
    """The deployments serving one alternative, which a reload of the models file replaces while
    the server runs: every ladder with the alternative shares the pool, and a request takes the
    deployments current when it reaches the rung, so one in flight keeps the ones it took."""

    def __init__(self, deployments: tuple[Deployment, ...]):
        self.deployments = deployments
        self.version = 0

    def replace(self, deployments: tuple[Deployment, ...]) -> None:
        self.deployments = deployments
        self.version += 1


class Rung:
    """One alternative of a ladder: the pool of its deployments (a models file may give it
    several; the balancer orders them per request), with the steps this ladder puts after each
    deployment's model (a parser, the quality gate)."""

    __slots__ = ("_made", "pool", "steps")

    def __init__(self, pool: DeploymentPool, steps: tuple[Runnable[Any, Any], ...] = ()):
        self.pool = pool
        self.steps = steps
        self._made: tuple[int, tuple[Deployment, ...]] | None = None

    @classmethod
    def of(cls, spec: ModelSpec, runnable: Runnable[Any, Any]) -> Rung:
        """An alternative with one deployment."""
        return cls(DeploymentPool((Deployment(spec, runnable),)))

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        """The pool's deployments with this rung's steps, made again only when the pool changes."""
        made = self._made
        if made is None or made[0] != self.pool.version:
            deployments = self.pool.deployments
            for step in self.steps:
                deployments = tuple(deployment.then(step) for deployment in deployments)
            made = self._made = (self.pool.version, deployments)
        return made[1]

    @property
    def spec(self) -> ModelSpec:
        return self.deployments[0].spec

    @property
    def runnable(self) -> Runnable[Any, Any]:
        return self.deployments[0].runnable

    def then(self, step: Runnable[Any, Any]) -> Rung:
        """This rung with ``step`` after each deployment's model."""
        return Rung(self.pool, (*self.steps, step))


@dataclass
class _Try:
    """One try of one deployment of one rung; ``tries`` counts its tries so far, this one included."""

    position: int
    rung: Rung
    deployment: Deployment
    breaker: CircuitBreaker | None  # None for the floor (always tried) and without resilience
    more: bool = False  # another deployment of the rung is left to try after this one
    tries: int = 0
    call: int | None = None  # the breaker's ticket for the try in flight
    again: bool = False  # ``_Trial.failed`` chose to retry this deployment
    form: Form | None = None  # how this try asks to continue the answer; None: it begins it
    switched: bool = False  # the rung rejected one form and is asked in the other
    started: bool = False  # counted as in flight by the balancer
    key: int | None = None  # which of the deployment's keys, when it has several

    @property
    def spec(self) -> ModelSpec:
        return self.deployment.spec

    @property
    def runnable(self) -> Runnable[Any, Any]:
        return self.deployment.runnable if self.key is None else self.deployment.keys[self.key][1]

    @property
    def key_name(self) -> str | None:
        """The name of the variable holding the key this try uses (never the key)."""
        return None if self.key is None else self.deployment.keys[self.key][0]


@dataclass(frozen=True)
class _Verdict:
    """What a failed try means: end the run with ``error``; else try again, on the same rung after
    ``wait`` seconds when that is set, or on the next rung."""

    error: RequestError | StreamInterrupted | None = None
    wait: float | None = None

    @property
    def rejected(self) -> bool:
        """The caller was at fault: the try said nothing about the endpoint."""
        return isinstance(self.error, RequestError)


class _Trial:
    """One request's way down the ladder: its order, deadline, breakers and failed attempts, and
    every decision on the way (the entry points only make the calls)."""

    def __init__(self, ladder: FallbackLadder, input: Any, config: RunnableConfig | None):
        self.ladder = ladder
        self.resilience = ladder.resilience
        self.attempts: list[Attempt] = []
        # Real monotonic time: the models' guards read the same clock (see resilience.deadline).
        self.deadline = Deadline(self.resilience.deadline_s if self.resilience else None)
        metadata = (config or {}).get("metadata") or {}
        self.run_id: str | None = metadata.get(ROOT_RUN_ID)
        self.needs = frozenset(metadata.get(NEEDS) or ())
        rungs = _allowed_rungs(ladder, metadata)
        specs = [rung.spec for rung in rungs]
        order = self.resilience.order(specs) if self.resilience else list(range(len(specs)))
        self.rungs = [rungs[i] for i in order]
        self.answer = StreamedAnswer()  # what of a streamed answer reached the caller
        # Structured output is never continued: half a JSON document and another model's other half.
        continues = self.resilience is not None and self.resilience.continue_streams
        self.continues = continues and STRUCTURED_OUTPUT not in self.needs
        self.broken: Attempt | None = None  # the first break of a streamed answer
        self.last_part: Contribution | None = None  # the latest rung's part of it
        self.input = input
        self._prompt_tokens: int | None = None

    def tries(self) -> Iterator[_Try]:
        """The tries to make, in order: for each rung, its deployments in the balancer's order,
        each's first try, then its retries while ``failed`` asks for them. ``admit`` each before
        making it; stop at the first that succeeds."""
        for position, rung in enumerate(self.rungs):
            deployments = rung.deployments
            order = self.resilience.balancer.order([d.spec for d in deployments]) if self.resilience else [0]
            for n, index in enumerate(order):
                deployment = deployments[index]
                attempt = _Try(position, rung, deployment, self._breaker(position, deployment), n < len(order) - 1)
                while True:
                    attempt.tries += 1
                    attempt.again = False
                    yield attempt
                    if not attempt.again:
                        break

    def admit(self, attempt: _Try) -> bool:
        """Whether ``attempt`` may go now; if so it takes its breaker ticket, so the breaker judges
        it in the order it started. A rung the deadline or its breaker rules out is skipped, and the
        skip recorded as an attempt; a retry was admitted with its rung's first try."""
        breaker = attempt.breaker
        if attempt.tries == 1:
            lacking = attempt.spec.lacks(self.needs)
            if lacking:
                self._record(attempt, Cause.UNSUPPORTED, f"{attempt.spec.model} cannot do {', '.join(sorted(lacking))}")
                return False
            if self.deadline.expired:
                self._record(attempt, Cause.TIMEOUT, "the request deadline passed before this model was tried")
                return False
            window = attempt.spec.context_window
            if window is not None and self.prompt_tokens() > window:
                detail = f"the prompt is about {self.prompt_tokens()} tokens; {attempt.spec.endpoint} takes {window}"
                self._record(attempt, Cause.CONTEXT_LENGTH, detail)
                return False
            if breaker is not None and not breaker.allow():
                reason = f"circuit breaker open: {breaker.last_reason}"
                self._record(attempt, Cause.BREAKER_OPEN, reason, breaker.retry_in())
                return False
            full = self.resilience.balancer.full(attempt.spec, self.prompt_tokens()) if self.resilience else None
            if full is not None:
                self._record(attempt, Cause.OVERLOADED, f"{attempt.spec.endpoint} is {full}")
                return False
        if attempt.deployment.keys and self.resilience is not None:
            attempt.key = self.resilience.keys.pick(attempt.spec.endpoint, len(attempt.deployment.keys))
            if attempt.key is None:
                self._record(attempt, Cause.AUTH, f"every key of {attempt.spec.endpoint} was refused; probed later")
                return False
        attempt.call = None if breaker is None else breaker.begin()
        if self.resilience is not None:
            self.resilience.balancer.started(attempt.spec, self.prompt_tokens())
            attempt.started = True
        return True

    def prompt_tokens(self) -> int:
        """The prompt's tokens, estimated once (for context windows and tokens per minute)."""
        if self._prompt_tokens is None:
            self._prompt_tokens = estimate_prompt_tokens(prompt_text(self.input))
        return self._prompt_tokens

    def _ended(self, attempt: _Try) -> None:
        if attempt.started and self.resilience is not None:
            self.resilience.balancer.ended(attempt.spec)
            attempt.started = False

    def request(self, attempt: _Try, input: Any) -> Any:
        """What ``attempt`` asks its model: the caller's input, or, once part of a streamed answer
        reached the caller, to continue that answer (in the form the model takes)."""
        self.answer.begin()
        if not self.answer.text:
            return input
        if attempt.form is None:
            attempt.form = PREFILL if CAN_PREFILL in attempt.spec.capabilities else USER_TURN
        return continuation_input(input, self.answer.text, attempt.form)

    def failed(self, attempt: _Try, exc: Exception) -> _Verdict:
        """Account for a failed try and decide what follows."""
        cause = classify(exc)
        if cause is Cause.AUTH and attempt.key_name is not None and self.resilience is not None:
            return self._key_refused(attempt, exc)
        _account(attempt.breaker, cause, attempt.call)
        self._ended(attempt)
        spec = attempt.spec
        if self.answer.started:
            return self._broke(attempt, exc, cause)
        if cause.is_callers_fault:
            return _Verdict(error=report_failure(self._rejected(spec, exc)))
        rerouted = isinstance(exc, ContentBlocked) or (self.resilience and self.resilience.reroute_content_filter)
        if cause is Cause.CONTENT_FILTER and not rerouted:
            # A policy decision about this request: the caller's to see, not another model's to launder.
            refused = ContentRefused(
                f"{spec.model} refused the request on content policy ({describe(exc)}); change the request",
                details={"model": spec.model},
            )
            return _Verdict(error=report_failure(refused))
        retry_after = retry_after_of(exc)
        wait = None
        breaker = attempt.breaker
        # Another deployment of the alternative goes at once; the last one left is retried, with backoff.
        if (
            self.resilience is not None
            and not attempt.more
            and (breaker is None or breaker.state is BreakerState.CLOSED)
        ):
            wait = self.resilience.retry.wait_before_retry(cause, attempt.tries, retry_after, self.deadline.time_left())
        attempt.again = wait is not None
        if wait is None:
            self._record(attempt, cause, describe(exc), retry_after, attempt.tries)
        return _Verdict(wait=wait)

    def _key_refused(self, attempt: _Try, exc: Exception) -> _Verdict:
        """The provider refused this try's key, not the endpoint: the key leaves the rotation and
        the deployment is asked again with its next key, at once; no breaker counts it."""
        assert self.resilience is not None and attempt.key is not None and attempt.key_name is not None
        if attempt.breaker is not None:
            attempt.breaker.release(attempt.call)
        self._ended(attempt)
        endpoint = attempt.spec.endpoint
        self.resilience.keys.refused(endpoint, attempt.key, attempt.key_name, describe(exc))
        if self.resilience.keys.usable(endpoint, len(attempt.deployment.keys)):
            attempt.again = True
        else:
            self._record(attempt, Cause.AUTH, describe(exc), None, attempt.tries)
        return _Verdict()

    def _broke(self, attempt: _Try, exc: Exception, cause: Cause) -> _Verdict:
        """A try failed after part of the answer reached the caller: the next rung continues it,
        unless it cannot be continued (then the stream ends interrupted). A continuation is not
        retried on the same rung (the caller waits mid-answer), except once in the other form when
        the model rejected the form it was asked in."""
        detail = describe(exc)
        part = self._report_part(attempt, cause.value)
        if part is None and attempt.form is not None and cause is Cause.BAD_REQUEST and not attempt.switched:
            attempt.form, attempt.switched, attempt.again = other_form(attempt.form), True, True
            return _Verdict()
        if not self.continues or self.answer.tool_calls or cause is Cause.CONTENT_FILTER:
            # Tool calls end explicitly; a policy refusal of the answer is not another model's to finish.
            return _Verdict(error=report_failure(StreamInterrupted(attempt.spec.model, cause, detail)))
        self._record(attempt, cause, detail, retry_after_of(exc), attempt.tries)
        if self.broken is None:
            self.broken = self.attempts[-1]
        return _Verdict()

    def _report_part(self, attempt: _Try, broke: str | None) -> Contribution | None:
        part = self.answer.part()
        if part is None:
            return None
        contribution = Contribution(self.serving(attempt), part.start, part.end, attempt.form, broke, part.dropped)
        report_contribution(contribution)
        self.last_part = contribution
        return contribution

    def continued_model(self) -> str | None:
        """The model whose part of the answer a continuation takes over."""
        return self.last_part.served.model if self.last_part is not None else None

    def succeeded(self, attempt: _Try) -> None:
        if attempt.breaker is not None:
            attempt.breaker.record_success(attempt.call)
        self._ended(attempt)
        if attempt.key is not None and attempt.key_name is not None and self.resilience is not None:
            self.resilience.keys.answered(attempt.spec.endpoint, attempt.key, attempt.key_name)
        self._report_part(attempt, None)
        report_served(self.serving(attempt))

    def serving(self, attempt: _Try) -> Served:
        """``attempt``'s rung as the one answering, with every model call this request made."""
        spec = attempt.spec
        tries = attempt.tries + sum(failed.tries for failed in self.attempts)
        return Served(self.ladder.ladder, attempt.position, spec.alternative, spec.model, tries, self.run_id)

    def release(self, attempt: _Try) -> None:
        """The try ended without a verdict (cancelled, or the client left)."""
        if attempt.breaker is not None:
            attempt.breaker.release(attempt.call)
        self._ended(attempt)

    def exhausted(self) -> AllRungsFailed | StreamInterrupted:
        """Every rung failed (or was skipped): the error listing every attempt; a streamed answer
        that broke is interrupted, since no rung could continue it."""
        broken = self.broken
        if broken is not None:
            continued = [a for a in self.attempts if a is not broken]
            return report_failure(StreamInterrupted(broken.model, broken.cause, broken.detail, continued))
        return report_failure(AllRungsFailed(self.ladder.ladder, self.attempts))

    def _breaker(self, position: int, deployment: Deployment) -> CircuitBreaker | None:
        if self.resilience is None or position == len(self.rungs) - 1:  # the floor is always tried
            return None
        return self.resilience.breakers.get(deployment.spec.endpoint)

    def _record(
        self, attempt: _Try, cause: Cause, detail: str, retry_after: float | None = None, tries: int = 0
    ) -> None:
        """A rung given up on, for ``AllRungsFailed``; ``tries=0``: skipped without a try."""
        spec = attempt.spec
        self.attempts.append(
            Attempt(
                attempt.position,
                spec.alternative,
                spec.model,
                spec.provider,
                cause,
                detail,
                retry_after,
                tries,
                spec.endpoint,
            )
        )

    @staticmethod
    def _rejected(spec: ModelSpec, exc: Exception) -> RequestError:
        if isinstance(exc, RequestError):
            return exc
        return RequestError(f"{spec.model} rejected the request as invalid ({describe(exc)}); change the input")


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

    def _rung_config(self, config: RunnableConfig, trial: _Trial, attempt: _Try, run_manager: Any) -> RunnableConfig:
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

    def _follow(self, verdict: _Verdict, run_manager: CallbackManagerForChainRun, exc: Exception) -> None:
        """After a failed try: end the run with the verdict's error, or wait before a retry."""
        if verdict.error is not None:
            self._fail(run_manager, verdict.error, exc)
        if verdict.wait is not None:
            self._sleep(verdict.wait)

    async def _afollow(
        self, attempt: _Try, verdict: _Verdict, run_manager: AsyncCallbackManagerForChainRun, exc: Exception
    ) -> None:
        """``_follow``, telling the other replicas first if the try changed the breaker."""
        if not verdict.rejected:
            await self._push(attempt.breaker)
        if verdict.error is not None:
            await self._afail(run_manager, verdict.error, exc)
        if verdict.wait is not None:
            await self._asleep(verdict.wait)

    async def _aadmit(self, trial: _Trial, attempt: _Try) -> bool:
        """``trial.admit``, having taken on another replica's verdict on a new rung's breaker."""
        if attempt.tries == 1:
            await self._pull(attempt.breaker)
        return trial.admit(attempt)

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
        trial = _Trial(self, input, config)
        config, run_manager = self._start(input, config)
        for attempt in trial.tries():
            if not trial.admit(attempt):
                continue
            try:
                with deadline_scope(trial.deadline.at):
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
        trial = _Trial(self, input, config)
        config, run_manager = await self._astart(input, config)
        for attempt in trial.tries():
            if not await self._aadmit(trial, attempt):
                continue
            try:
                with deadline_scope(trial.deadline.at):
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
                await self._push(attempt.breaker)
                await run_manager.on_chain_end(output)
                return output
        await self._afail(run_manager, trial.exhausted())

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        trial = _Trial(self, input, config)
        config, run_manager = self._start(input, config)
        for attempt in trial.tries():
            if not trial.admit(attempt):
                continue
            asked = trial.request(attempt, input)
            try:
                rung_config = self._rung_config(config, trial, attempt, run_manager)
                chunks = iter(attempt.runnable.stream(asked, rung_config, **kwargs))
                with deadline_scope(trial.deadline.at):  # the model's stream starts on the first chunk
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
        trial = _Trial(self, input, config)
        config, run_manager = await self._astart(input, config)
        for attempt in trial.tries():
            if not await self._aadmit(trial, attempt):
                continue
            asked = trial.request(attempt, input)
            try:
                rung_config = self._rung_config(config, trial, attempt, run_manager)
                achunks = aiter(attempt.runnable.astream(asked, rung_config, **kwargs))
                # The scope must not span a yield (the consumer may resume us in another
                # context); the model's stream starts, and reads the deadline, on the first chunk.
                with deadline_scope(trial.deadline.at):
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
                await self._push(attempt.breaker)
                await run_manager.on_chain_end(trial.answer.final)
                return
        await self._afail(run_manager, trial.exhausted())
