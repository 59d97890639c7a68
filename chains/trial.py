"""``Trial``: one request's way down a ``FallbackLadder``, and every decision on it: which rungs
the caller may use and in what order, which deployments and tries to make (``tries``), whether
the breaker, the deadline, the context window and the capacity admit one (``admit``), what a
failure means (``failed``: end the run, retry after a wait, move to another deployment or rung,
continue a broken stream; whether it counts against the breaker), what a budget that cannot
cover a try means (``over_budget``), what each try cost (settled on its budget when it ends) and
the error when every rung failed (``exhausted``). The ladder's entry points only make the calls
and do what the trial decided.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable, RunnableConfig

from chains.continuation import PREFILL, USER_TURN, Form, continuation_input, messages_of, other_form, prompt_text
from chains.rungs import Deployment, Rung
from chains.serving_report import (
    Contribution,
    Served,
    report_contribution,
    report_downgrade,
    report_failure,
    report_served,
)
from chains.streamed_answer import StreamedAnswer
from errors import (
    AllRungsFailed,
    Attempt,
    BudgetExhausted,
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
from policy.budget_book import prompt_tokens_at_most
from policy.limits import estimate_prompt_tokens
from policy.request_policy import Access
from resilience.breaker import BreakerState, CircuitBreaker
from resilience.deadline import Deadline
from tracing.ladder_spans import NO_LADDER_SPAN, LadderSpan
from vocabulary.models import PREFILL as CAN_PREFILL
from vocabulary.models import STRUCTURED_OUTPUT, ModelSpec
from vocabulary.run_metadata import (
    NEEDS,
    ROOT_RUN_ID,
)

if TYPE_CHECKING:
    from chains.ladder import FallbackLadder


def account(breaker: CircuitBreaker | None, cause: Cause, call: int | None) -> None:
    """Count a failure against the endpoint's breaker only when it says the endpoint is unwell."""
    if breaker is None:
        return
    if cause.counts_against_breaker:
        breaker.record_failure(cause.value, call)
    else:
        breaker.release(call)


def allowed_rungs(ladder: FallbackLadder, metadata: dict[str, Any]) -> list[Rung]:
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


@dataclass
class Try:
    """One try of one deployment of one rung; ``tries`` counts its tries so far, this one included."""

    position: int
    rung: Rung
    deployment: Deployment
    breaker: CircuitBreaker | None  # None for the floor (always tried) and without resilience
    more: bool = False  # another deployment of the rung is left to try after this one
    tries: int = 0
    call: int | None = None  # the breaker's ticket for the try in flight
    again: bool = False  # ``Trial.failed`` chose to retry this deployment
    form: Form | None = None  # how this try asks to continue the answer; None: it begins it
    switched: bool = False  # the rung rejected one form and is asked in the other
    started: bool = False  # counted as in flight by the balancer
    key: int | None = None  # which of the deployment's keys, when it has several
    ticket: str | None = None  # the try's ticket for its calls' cost (``resilience.call_costs``)
    hold: Any = None  # the money a budget holds for the try in flight
    cost: Decimal | None = None  # what the try's calls cost, once it ended

    @property
    def cap(self) -> int | None:
        """The output tokens the try is held to by its budget hold."""
        return None if self.hold is None else int(self.hold.cap)

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
class Verdict:
    """What a failed try means: end the run with ``error``; else try again, on the same rung after
    ``wait`` seconds when that is set, or on the next rung."""

    error: RequestError | StreamInterrupted | None = None
    wait: float | None = None

    @property
    def rejected(self) -> bool:
        """The caller was at fault: the try said nothing about the endpoint."""
        return isinstance(self.error, RequestError)


class Trial:
    """One request's way down the ladder: its order, deadline, breakers and failed attempts, and
    every decision on the way (the entry points only make the calls)."""

    def __init__(self, ladder: FallbackLadder, input: Any, config: RunnableConfig | None):
        self.ladder = ladder
        self.resilience = ladder.resilience
        self.attempts: list[Attempt] = []
        # Real monotonic time: the models' guards read the same clock (see resilience.deadline).
        self.deadline = Deadline(self.resilience.deadline_s if self.resilience else None)
        metadata = (config or {}).get("metadata") or {}
        self.metadata: dict[str, Any] = metadata
        self.run_id: str | None = metadata.get(ROOT_RUN_ID)
        self.needs = frozenset(metadata.get(NEEDS) or ())
        rungs = allowed_rungs(ladder, metadata)
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
        self.budget_refusal: BudgetExhausted | None = None  # a budget that made the ladder skip a rung
        self.cost: Decimal | None = None  # what every try so far cost: what a cached answer saves
        tracer = self.resilience.traces if self.resilience is not None else None
        # The ladder enters and ends it; its events are the trial's decisions.
        self.span: LadderSpan = tracer.start(ladder.ladder, metadata) if tracer is not None else NO_LADDER_SPAN

    @property
    def traced(self) -> bool:
        return self.span is not NO_LADDER_SPAN

    def tries(self) -> Iterator[Try]:
        """The tries to make, in order: for each rung, its deployments in the balancer's order,
        each's first try, then its retries while ``failed`` asks for them. ``admit`` each before
        making it; stop at the first that succeeds."""
        for position, rung in enumerate(self.rungs):
            deployments = rung.deployments
            order = self.resilience.balancer.order([d.spec for d in deployments]) if self.resilience else [0]
            for n, index in enumerate(order):
                deployment = deployments[index]
                attempt = Try(position, rung, deployment, self._breaker(position, deployment), n < len(order) - 1)
                while True:
                    attempt.tries += 1
                    attempt.again = False
                    yield attempt
                    if not attempt.again:
                        break

    def admit(self, attempt: Try) -> bool:
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
            attempt.ticket = self.resilience.costs.open()
        return True

    def spend_ask(self, attempt: Try, asked: Any, options: dict[str, Any]) -> tuple[str, int, int | None]:
        """What a budget needs to hold the most ``attempt`` can cost: the price table's key for its
        model, an upper bound on its prompt's tokens (tools' schemas included) and its ``max_tokens``."""
        text = prompt_text(asked)
        if options.get("tools"):
            text += json.dumps(options["tools"])
        try:
            messages = len(messages_of(asked))
        except TypeError:
            messages = 1
        max_tokens = options.get("max_tokens")
        return attempt.spec.price_key or attempt.spec.model, prompt_tokens_at_most(text, messages), max_tokens

    def over_budget(self, attempt: Try, refused: BudgetExhausted) -> Verdict:
        """A budget cannot cover ``attempt``: the request is refused, or, when the budget
        downgrades, the rung is skipped so a cheaper one (down to the free floor) answers."""
        self.release(attempt)
        if not refused.downgrades:
            return Verdict(error=report_failure(refused))
        self._record(attempt, Cause.BUDGET_EXHAUSTED, refused.message)
        self.budget_refusal = refused
        report_downgrade(str(refused.details.get("budget")))
        return Verdict()

    def prompt_tokens(self) -> int:
        """The prompt's tokens, estimated once (for context windows and tokens per minute)."""
        if self._prompt_tokens is None:
            self._prompt_tokens = estimate_prompt_tokens(prompt_text(self.input))
        return self._prompt_tokens

    def _ended(self, attempt: Try) -> None:
        if self.resilience is None:
            return
        if attempt.started:
            self.resilience.balancer.ended(attempt.spec)
            attempt.started = False
        if attempt.ticket is not None:
            attempt.cost = self.resilience.costs.close(attempt.ticket)
            attempt.ticket = None
            if attempt.cost is not None:
                self.cost = (self.cost or Decimal(0)) + attempt.cost
            # The try's records came in before its end reached the ladder: its cost is known.
            if self.resilience.spend is not None:
                self.resilience.spend.settle(attempt.hold, attempt.cost, self.metadata)
            attempt.hold = None

    def request(self, attempt: Try, input: Any) -> Any:
        """What ``attempt`` asks its model: the caller's input, or, once part of a streamed answer
        reached the caller, to continue that answer (in the form the model takes)."""
        self.answer.begin()
        if not self.answer.text:
            return input
        if attempt.form is None:
            attempt.form = PREFILL if CAN_PREFILL in attempt.spec.capabilities else USER_TURN
            self.span.continuing(
                attempt.position, attempt.spec.model, self.continued_model(), len(self.answer.text), attempt.form
            )
        return continuation_input(input, self.answer.text, attempt.form)

    def failed(self, attempt: Try, exc: Exception) -> Verdict:
        """Account for a failed try and decide what follows."""
        cause = classify(exc)
        if cause is Cause.AUTH and attempt.key_name is not None and self.resilience is not None:
            return self._key_refused(attempt, exc)
        account(attempt.breaker, cause, attempt.call)
        self._ended(attempt)
        spec = attempt.spec
        if self.answer.started:
            return self._broke(attempt, exc, cause)
        if cause.is_callers_fault:
            return Verdict(error=report_failure(self._rejected(spec, exc)))
        rerouted = isinstance(exc, ContentBlocked) or (self.resilience and self.resilience.reroute_content_filter)
        if cause is Cause.CONTENT_FILTER and not rerouted:
            # A policy decision about this request: the caller's to see, not another model's to launder.
            refused = ContentRefused(
                f"{spec.model} refused the request on content policy ({describe(exc)}); change the request",
                details={"model": spec.model},
            )
            return Verdict(error=report_failure(refused))
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
        else:
            self.span.retrying(attempt.position, spec.model, cause.value, attempt.tries, wait)
        return Verdict(wait=wait)

    def _key_refused(self, attempt: Try, exc: Exception) -> Verdict:
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
        return Verdict()

    def _broke(self, attempt: Try, exc: Exception, cause: Cause) -> Verdict:
        """A try failed after part of the answer reached the caller: the next rung continues it,
        unless it cannot be continued (then the stream ends interrupted). A continuation is not
        retried on the same rung (the caller waits mid-answer), except once in the other form when
        the model rejected the form it was asked in."""
        detail = describe(exc)
        part = self._report_part(attempt, cause.value)
        if part is None and attempt.form is not None and cause is Cause.BAD_REQUEST and not attempt.switched:
            attempt.form, attempt.switched, attempt.again = other_form(attempt.form), True, True
            return Verdict()
        if not self.continues or self.answer.tool_calls or cause is Cause.CONTENT_FILTER:
            # Tool calls end explicitly; a policy refusal of the answer is not another model's to finish.
            return Verdict(error=report_failure(StreamInterrupted(attempt.spec.model, cause, detail)))
        self._record(attempt, cause, detail, retry_after_of(exc), attempt.tries)
        if self.broken is None:
            self.broken = self.attempts[-1]
        return Verdict()

    def _report_part(self, attempt: Try, broke: str | None) -> Contribution | None:
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

    def succeeded(self, attempt: Try) -> None:
        if attempt.breaker is not None:
            attempt.breaker.record_success(attempt.call)
        self._ended(attempt)
        if attempt.key is not None and attempt.key_name is not None and self.resilience is not None:
            self.resilience.keys.answered(attempt.spec.endpoint, attempt.key, attempt.key_name)
        self._report_part(attempt, None)
        served = self.serving(attempt)
        self.span.served(served.model, served.rung, served.tries)
        report_served(served)

    def serving(self, attempt: Try) -> Served:
        """``attempt``'s rung as the one answering, with every model call this request made."""
        spec = attempt.spec
        tries = attempt.tries + sum(failed.tries for failed in self.attempts)
        return Served(self.ladder.ladder, attempt.position, spec.alternative, spec.model, tries, self.run_id)

    def release(self, attempt: Try) -> None:
        """The try ended without a verdict (cancelled, or the client left)."""
        if attempt.breaker is not None:
            attempt.breaker.release(attempt.call)
        self._ended(attempt)

    def exhausted(self) -> AllRungsFailed | StreamInterrupted | BudgetExhausted:
        """Every rung failed (or was skipped): the error listing every attempt; a streamed answer
        that broke is interrupted, since no rung could continue it."""
        broken = self.broken
        if self.budget_refusal is not None and all(a.cause is Cause.BUDGET_EXHAUSTED for a in self.attempts):
            refusal = self.budget_refusal.downgrading(False)  # no rung was cheap enough
            report_failure(refusal)
            return refusal
        if broken is not None:
            continued = [a for a in self.attempts if a is not broken]
            return report_failure(StreamInterrupted(broken.model, broken.cause, broken.detail, continued))
        return report_failure(AllRungsFailed(self.ladder.ladder, self.attempts))

    def _breaker(self, position: int, deployment: Deployment) -> CircuitBreaker | None:
        if self.resilience is None or position == len(self.rungs) - 1:  # the floor is always tried
            return None
        return self.resilience.breakers.get(deployment.spec.endpoint)

    def _record(
        self, attempt: Try, cause: Cause, detail: str, retry_after: float | None = None, tries: int = 0
    ) -> None:
        """A rung given up on, for ``AllRungsFailed``; ``tries=0``: skipped without a try."""
        spec = attempt.spec
        if tries == 0:
            self.span.skipped(attempt.position, spec.model, spec.endpoint, cause.value, detail)
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
