"""``LadderPolicies``: the shared state and policies every ladder of one server uses (breakers,
retry policy, request deadline, ladder order, the balancer of deployments, fault plan), built once
by ``wiring.resilience``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from resilience.balancing import Balancer
from resilience.breaker import BreakerBoard, BreakerPolicy, CircuitBreaker
from resilience.call_costs import CallCosts
from resilience.faults import FaultPlan
from resilience.key_rotation import KeyRotation
from resilience.latency import LatencyBoard
from resilience.order import LadderOrder, ordered
from resilience.retry import RetryPolicy
from tracing.ladder_spans import LadderTracer


@runtime_checkable  # a field of a pydantic model (the ladder) is checked with isinstance
class BreakerSharing(Protocol):
    """Breaker states shared with other replicas (``shared_state.breakers.BreakerSync``)."""

    async def pull(self, breaker: CircuitBreaker) -> None: ...

    async def push(self, breaker: CircuitBreaker) -> None: ...


class SpendHold(Protocol):
    """Money held for one call; ``cap``: the output tokens the call is held to."""

    @property
    def cap(self) -> int: ...


@runtime_checkable
class SpendGate(Protocol):
    """The callers' money budgets (``policy.budget_book.BudgetBook``), asked before each call."""

    async def hold(
        self, identity: Mapping[str, object], price_key: str, input_tokens: int, max_tokens: int | None
    ) -> SpendHold | None:
        """Hold the most the call can cost, or raise ``errors.BudgetExhausted``; None: nothing to hold."""
        ...

    def settle(self, hold: Any, cost: Decimal | None, identity: Mapping[str, object]) -> None:
        """The try ended having cost ``cost``: release ``hold`` (from ``hold``, or None) and spend it."""
        ...


class CacheLookup(Protocol):
    """What the response cache said of one request: ``result`` is ``hit``, ``miss`` or ``bypass``
    (the client asked for a fresh answer); on a hit, ``output`` is the answer as the ladder
    returns it and ``chunks`` the same answer as a stream; ``store``: whether the fresh answer
    may be kept."""

    @property
    def result(self) -> str: ...

    @property
    def output(self) -> Any: ...

    @property
    def model(self) -> str: ...

    @property
    def alternative(self) -> str: ...

    @property
    def store(self) -> bool: ...

    def chunks(self) -> list[Any]: ...


@runtime_checkable
class AnswerCache(Protocol):
    """Answers kept by everything that shapes them (``caching.answer_cache.ResponseCache``)."""

    async def lookup(
        self, ladder: str, input: Any, config: Mapping[str, Any], options: Mapping[str, Any]
    ) -> CacheLookup | None:
        """The cache's answer for this request, or None when caching is off for it."""
        ...

    def remember(self, lookup: CacheLookup, output: Any, *, model: str, alternative: str, cost: Decimal | None) -> None:
        """Keep ``output``, the fresh answer to ``lookup``'s request, which cost ``cost``."""
        ...


@dataclass
class LadderPolicies:
    breakers: BreakerBoard = field(default_factory=lambda: BreakerBoard(BreakerPolicy()))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deadline_s: float | None = None
    order: LadderOrder = ordered
    latency: LatencyBoard = field(default_factory=LatencyBoard)
    balancer: Balancer = field(default_factory=Balancer)  # orders each alternative's deployments
    keys: KeyRotation = field(default_factory=KeyRotation)  # which of a deployment's keys, and which are out
    faults: FaultPlan = field(default_factory=lambda: FaultPlan({}))  # changeable at run time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    breaker_sync: BreakerSharing | None = None  # set when replicas share breakers through Redis
    reroute_content_filter: bool = False  # a content-policy refusal goes to the next rung, not the caller
    continue_streams: bool = True  # a stream broken after text reached the caller is continued by the next rung
    costs: CallCosts = field(default_factory=CallCosts)  # what each try cost, from its records
    spend: SpendGate | None = None  # the callers' money budgets, when any are set
    answers: AnswerCache | None = None  # the response cache, when it is switched on anywhere
    traces: LadderTracer | None = None  # a span per ladder run, when tracing is on

    async def pull(self, breaker: CircuitBreaker | None) -> None:
        """Take on another replica's verdict on ``breaker`` (no-op without shared state)."""
        if breaker is not None and self.breaker_sync is not None:
            await self.breaker_sync.pull(breaker)

    async def push(self, breaker: CircuitBreaker | None) -> None:
        """Tell the other replicas about ``breaker``'s change, if it made one."""
        if breaker is not None and self.breaker_sync is not None:
            await self.breaker_sync.push(breaker)
