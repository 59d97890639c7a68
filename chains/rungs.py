"""A ladder's rungs: ``Rung``, one alternative, with the ``DeploymentPool`` of the ``Deployment``s
serving it (a models file may give it several; a reload refills the pool while the server runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import Runnable

from vocabulary.models import ModelSpec


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
