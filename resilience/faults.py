"""Fault injection for demonstrations: make a model alternative fail, slow down, stall or be
rate limited with a given probability, so fallbacks, breakers and alerts can be watched without
a real outage. Off unless ``LLM_SERVER_FAULTS`` names an alternative, or ``PUT /faults``
switches one on while the server runs, for example

    LLM_SERVER_FAULTS='{"openai": {"kind": "status", "status": 503, "probability": 0.5}}'

Faults happen inside the model's own call (see ``providers.guard``), so records, alerts and
breakers see them exactly as they would see the real thing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import BaseModel, Field

from errors import Cause, ProviderError

FaultKind = Literal["status", "rate_limit", "slow", "stall"]


class FaultSpec(BaseModel):
    kind: FaultKind = Field(description="status: fail with `status`; rate_limit: 429 with Retry-After; "
                            "slow: wait `delay_s` first; stall: stop sending after the first chunk")  # fmt: skip
    probability: float = Field(1.0, ge=0, le=1)
    status: int = Field(503, ge=500, le=599, description="HTTP status of a `status` fault (5xx).")
    delay_s: float = Field(10.0, ge=0, description="Extra wait of a `slow` fault.")
    retry_after_s: float = Field(30.0, ge=0, description="Retry-After of a `rate_limit` fault.")


class InjectedFault(ProviderError):
    """A failure made on purpose by ``LLM_SERVER_FAULTS``; says so in its message."""


def _cause_of_status(status: int) -> Cause:
    return Cause.TIMEOUT if status == 504 else Cause.SERVER_ERROR


class FaultPlan:
    """Which alternatives fail how. Every model holds the same plan, so ``replace`` (the
    ``/faults`` route) switches faults on and off for the next calls, without a restart."""

    def __init__(self, specs: Mapping[str, FaultSpec], *, draw: Callable[[], float] = random.random):
        self.specs = dict(specs)
        self._draw = draw

    def replace(self, specs: Mapping[str, FaultSpec]) -> None:
        self.specs = dict(specs)  # one assignment: a call in flight sees the old plan or the new

    def pick(self, alternative: str) -> FaultSpec | None:
        """The fault to apply to one call of ``alternative`` now, if the dice say so."""
        spec = self.specs.get(alternative)
        if spec is None or spec.probability <= 0 or self._draw() >= spec.probability:
            return None
        return spec

    @staticmethod
    async def before_call(spec: FaultSpec, model: str) -> None:
        """Fail or delay a call the way ``spec`` says (a stall happens later, in the stream)."""
        if spec.kind == "slow":
            await asyncio.sleep(spec.delay_s)
        elif spec.kind == "status":
            raise InjectedFault(f"injected fault: {model} answered {spec.status}", cause=_cause_of_status(spec.status))
        elif spec.kind == "rate_limit":
            raise InjectedFault(
                f"injected fault: {model} answered 429", cause=Cause.RATE_LIMITED, retry_after=spec.retry_after_s
            )
