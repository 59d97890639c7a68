"""``ResilienceKit``: the shared state and policies every ladder of one server uses (breakers,
retry policy, request deadline, ladder order, fault plan), built once from settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from callbacks.pricing import PriceTable
from resilience.breaker import BreakerBoard, BreakerPolicy, CircuitBreaker
from resilience.faults import FaultPlan
from resilience.latency import LatencyBoard
from resilience.order import LadderOrder, ladder_order, ordered
from resilience.retry import RetryPolicy
from settings import Settings
from shared_state.breakers import BreakerSync


@dataclass
class ResilienceKit:
    breakers: BreakerBoard = field(default_factory=lambda: BreakerBoard(BreakerPolicy()))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deadline_s: float | None = None
    order: LadderOrder = ordered
    latency: LatencyBoard = field(default_factory=LatencyBoard)
    faults: FaultPlan = field(default_factory=lambda: FaultPlan({}))  # changeable at run time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    breaker_sync: BreakerSync | None = None  # set when replicas share breakers through Redis

    async def pull(self, breaker: CircuitBreaker | None) -> None:
        """Take on another replica's verdict on ``breaker`` (no-op without shared state)."""
        if breaker is not None and self.breaker_sync is not None:
            await self.breaker_sync.pull(breaker)

    async def push(self, breaker: CircuitBreaker | None) -> None:
        """Tell the other replicas about ``breaker``'s change, if it made one."""
        if breaker is not None and self.breaker_sync is not None:
            await self.breaker_sync.push(breaker)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        prices: PriceTable,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> ResilienceKit:
        """``clock`` drives the breakers and ``sleep`` the retry waits (tests pass fakes)."""
        policy = BreakerPolicy(
            consecutive_failures=settings.breaker_consecutive_failures,
            failure_ratio=settings.breaker_failure_ratio,
            window_s=settings.breaker_window_s,
            min_calls=settings.breaker_min_calls,
            open_s=settings.breaker_open_s,
            half_open_probes=settings.breaker_half_open_probes,
        )
        retry = RetryPolicy(
            attempts=settings.retry_attempts,
            base_s=settings.retry_base_s,
            max_backoff_s=settings.retry_max_backoff_s,
            max_retry_after_s=settings.retry_max_retry_after_s,
        )
        latency = LatencyBoard()
        return cls(
            breakers=BreakerBoard(policy, clock=clock),
            retry=retry,
            deadline_s=settings.request_deadline_s,
            order=ladder_order(settings.ladder_strategy, prices, latency),
            latency=latency,
            faults=FaultPlan(settings.faults),
            sleep=sleep,
        )
