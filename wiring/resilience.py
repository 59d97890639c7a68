"""The ladders' shared policies from settings: breakers, retries, the request deadline, the rung
order, the balancer of each alternative's deployments and the fault plan."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from monitoring.pricing import PriceTable
from resilience.balancing import Balancer
from resilience.breaker import BreakerBoard, BreakerPolicy
from resilience.faults import FaultPlan
from resilience.key_rotation import KeyRotation
from resilience.ladder_policies import LadderPolicies
from resilience.latency import LatencyBoard
from resilience.order import ladder_order
from resilience.retry import RetryPolicy
from settings import Settings


def build_ladder_policies(
    settings: Settings,
    prices: PriceTable,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> LadderPolicies:
    """``clock`` drives the breakers and the balancer's capacity windows, ``sleep`` the retry
    waits and ``rng`` the balancer's weighted shuffle (tests pass fakes and a seeded one)."""
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
    return LadderPolicies(
        breakers=BreakerBoard(policy, clock=clock),
        retry=retry,
        deadline_s=settings.request_deadline_s,
        order=ladder_order(settings.ladder_strategy, prices, latency),
        latency=latency,
        balancer=Balancer(settings.balancing, clock=clock, rng=rng),
        keys=KeyRotation(settings.key_probe_s, clock=clock),
        faults=FaultPlan(settings.faults),
        reroute_content_filter=settings.reroute_content_filter,
        continue_streams=settings.continue_streams,
        sleep=sleep,
    )
