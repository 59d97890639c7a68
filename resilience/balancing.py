"""``Balancer``: in which order one request tries the deployments of an alternative, and which of
them are at the requests or tokens per minute they may take.

Strategies (``LLM_SERVER_BALANCING``):

- ``weighted`` (the default): each deployment gets its ``weight``'s share of the first tries,
  exactly over any run of requests (smooth weighted round robin, as nginx balances: each adds its
  weight to a running credit, the largest credit goes first and pays the total back), from a
  random start in each replica so replicas do not move in step; after a failure the others
  follow in a weighted random order (Efraimidis and Spirakis: each draws ``u ** (1 / weight)``,
  the largest first). A purely random shuffle would stray by about 7% of 200 requests (one
  standard deviation) from an even split;
- ``least_busy``: the fewest calls in flight from this replica first, ties by the weighted draw;
- ``lowest_latency``: the lowest recent time to first token first (an exponentially weighted
  mean over answered calls); a deployment with no measurement yet goes first, so it gets one.

Every order is a full list: a try that fails moves to the next deployment of the same
alternative before the ladder falls to its next rung. Capacity is counted per replica over the
last minute: requests as they start, tokens as the prompt's estimate when it starts and the
answer's as its record comes in. Touched from the event loop only.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Literal

from vocabulary import Outcome
from vocabulary.models import ModelSpec
from vocabulary.records import CallRecord
from vocabulary.run_metadata import DEPLOYMENT

Strategy = Literal["weighted", "least_busy", "lowest_latency"]
WINDOW_S = 60.0


class _Window:
    """Requests and tokens taken in the last ``WINDOW_S`` seconds."""

    def __init__(self) -> None:
        self.events: deque[tuple[float, int, int]] = deque()  # (at, requests, tokens)
        self.requests = 0
        self.tokens = 0

    def add(self, now: float, requests: int, tokens: int) -> None:
        self.events.append((now, requests, tokens))
        self.requests += requests
        self.tokens += tokens

    def prune(self, now: float) -> None:
        while self.events and self.events[0][0] <= now - WINDOW_S:
            _, requests, tokens = self.events.popleft()
            self.requests -= requests
            self.tokens -= tokens


class Balancer:
    def __init__(
        self,
        strategy: Strategy = "weighted",
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        weight: float = 0.2,
    ):
        self.strategy = strategy
        self.rng = rng or random.Random()
        self.clock = clock
        self.weight = weight  # share of the newest call in the latency mean
        self.in_flight: Counter[str] = Counter()
        self._first_token: dict[str, float] = {}
        self._windows: dict[str, _Window] = {}
        self._credit: dict[tuple[str, ...], list[float]] = {}  # by set of deployments: weighted turns

    def order(self, specs: Sequence[ModelSpec]) -> list[int]:
        """The deployments' indexes in the order this request tries them."""
        if len(specs) < 2:
            return list(range(len(specs)))
        draws = [self.rng.random() ** (1.0 / spec.weight) for spec in specs]
        if self.strategy == "weighted":
            first = self._next_in_turn(specs)
            return [first, *sorted((i for i in range(len(specs)) if i != first), key=lambda i: -draws[i])]
        if self.strategy == "least_busy":
            return sorted(range(len(specs)), key=lambda i: (self.in_flight[specs[i].endpoint], -draws[i]))
        if self.strategy == "lowest_latency":

            def latency(i: int) -> tuple[float, float, float]:
                seconds = self._first_token.get(specs[i].endpoint)
                return (0.0, 0.0, -draws[i]) if seconds is None else (1.0, seconds, -draws[i])

            return sorted(range(len(specs)), key=latency)
        return sorted(range(len(specs)), key=lambda i: -draws[i])

    def _next_in_turn(self, specs: Sequence[ModelSpec]) -> int:
        """Smooth weighted round robin over this set of deployments."""
        names = tuple(spec.endpoint for spec in specs)
        credit = self._credit.get(names)
        if credit is None:
            credit = self._credit[names] = [self.rng.random() * spec.weight for spec in specs]
        for i, spec in enumerate(specs):
            credit[i] += spec.weight
        first = max(range(len(specs)), key=credit.__getitem__)
        credit[first] -= sum(spec.weight for spec in specs)
        return first

    def full(self, spec: ModelSpec, prompt_tokens: int) -> str | None:
        """Why ``spec`` cannot take this request now (its per-minute capacity), or None."""
        if spec.requests_per_minute is None and spec.tokens_per_minute is None:
            return None
        window = self._window(spec.endpoint)
        if spec.requests_per_minute is not None and window.requests >= spec.requests_per_minute:
            return f"at its {spec.requests_per_minute} requests per minute"
        if spec.tokens_per_minute is not None and window.tokens + prompt_tokens > spec.tokens_per_minute:
            return f"at its {spec.tokens_per_minute} tokens per minute"
        return None

    def started(self, spec: ModelSpec, prompt_tokens: int) -> None:
        self.in_flight[spec.endpoint] += 1
        if spec.requests_per_minute is not None or spec.tokens_per_minute is not None:
            self._windows.setdefault(spec.endpoint, _Window()).add(self.clock(), 1, prompt_tokens)

    def ended(self, spec: ModelSpec) -> None:
        if self.in_flight[spec.endpoint] > 0:
            self.in_flight[spec.endpoint] -= 1

    def observe(self, record: CallRecord) -> None:
        """A call-record listener: the answer's tokens count against its deployment's capacity,
        and an answered stream's time to first token into its latency."""
        endpoint = record.metadata.get(DEPLOYMENT)
        if not isinstance(endpoint, str):
            return
        window = self._windows.get(endpoint)
        if window is not None:
            window.add(self.clock(), 0, record.output_tokens)
        if record.outcome != Outcome.OK or record.first_token_s is None:
            return
        old = self._first_token.get(endpoint)
        seconds = record.first_token_s
        self._first_token[endpoint] = seconds if old is None else old + self.weight * (seconds - old)

    def _window(self, endpoint: str) -> _Window:
        window = self._windows.setdefault(endpoint, _Window())
        window.prune(self.clock())
        return window
