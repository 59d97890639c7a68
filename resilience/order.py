"""Ladder orders: which rung a request tries first. The last rung (the local model) always stays
last: it is the floor the ladder degrades to, never a choice to optimise.

- ``ordered``: as configured (the seed's ladder).
- ``cheapest``: by price per token from the price table; unpriced models after priced ones.
- ``fastest``: by monitored latency; models with no measurement yet go first, so they get one.

Ties keep the configured order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from monitoring.pricing import PriceTable
from resilience.latency import LatencyBoard
from vocabulary.models import ModelSpec

Strategy = Literal["ordered", "cheapest", "fastest"]
LadderOrder = Callable[[Sequence[ModelSpec]], list[int]]


def _keep_last(specs: Sequence[ModelSpec], key: Callable[[ModelSpec], tuple[float, ...]]) -> list[int]:
    if len(specs) < 2:
        return list(range(len(specs)))
    head = sorted(range(len(specs) - 1), key=lambda i: (*key(specs[i]), i))
    return [*head, len(specs) - 1]


def ordered(specs: Sequence[ModelSpec]) -> list[int]:
    return list(range(len(specs)))


def cheapest_first(prices: PriceTable) -> LadderOrder:
    def key(spec: ModelSpec) -> tuple[float, ...]:
        price = prices.price_of(spec.model)
        return (1.0, 0.0) if price is None else (0.0, float(price.input + price.output))

    return lambda specs: _keep_last(specs, key)


def fastest_first(latency: LatencyBoard) -> LadderOrder:
    def key(spec: ModelSpec) -> tuple[float, ...]:
        seconds = latency.latency_of(spec.model)
        return (0.0, 0.0) if seconds is None else (1.0, seconds)

    return lambda specs: _keep_last(specs, key)


def ladder_order(strategy: Strategy, prices: PriceTable, latency: LatencyBoard) -> LadderOrder:
    if strategy == "cheapest":
        return cheapest_first(prices)
    if strategy == "fastest":
        return fastest_first(latency)
    return ordered
