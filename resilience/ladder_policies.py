"""``LadderPolicies``: the shared state and policies every ladder of one server uses (breakers,
retry policy, request deadline, ladder order, the balancer of deployments, fault plan), built once
by ``wiring.resilience``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from resilience.balancing import Balancer
from resilience.breaker import BreakerBoard, BreakerPolicy, CircuitBreaker
from resilience.faults import FaultPlan
from resilience.key_rotation import KeyRotation
from resilience.latency import LatencyBoard
from resilience.order import LadderOrder, ordered
from resilience.retry import RetryPolicy


@runtime_checkable  # a field of a pydantic model (the ladder) is checked with isinstance
class BreakerSharing(Protocol):
    """Breaker states shared with other replicas (``shared_state.breakers.BreakerSync``)."""

    async def pull(self, breaker: CircuitBreaker) -> None: ...

    async def push(self, breaker: CircuitBreaker) -> None: ...


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

    async def pull(self, breaker: CircuitBreaker | None) -> None:
        """Take on another replica's verdict on ``breaker`` (no-op without shared state)."""
        if breaker is not None and self.breaker_sync is not None:
            await self.breaker_sync.pull(breaker)

    async def push(self, breaker: CircuitBreaker | None) -> None:
        """Tell the other replicas about ``breaker``'s change, if it made one."""
        if breaker is not None and self.breaker_sync is not None:
            await self.breaker_sync.push(breaker)
