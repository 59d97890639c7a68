"""``ModelBandit``: an epsilon-greedy bandit per question type, over every model a caller may use.

Each (question type, model) arm keeps a discounted mean reward in [0, 1]. The estimate starts
from a prior (the policy table's preference, worth ``prior_weight`` observations) and every
observation multiplies the old evidence by ``discount`` first, so a model that degrades loses
its traffic within tens of calls and one that recovers can win it back. ``choose`` takes the
best estimate, except with probability ``exploration`` it tries another allowed arm: that is
how an arm that fell behind gets the chance to show it recovered.

State: one small dict of floats, updated under a lock (records may arrive from worker threads).
Randomness comes from an injected ``random.Random`` so tests are repeatable.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


def personal_arms(kind: str, owner: str) -> str:
    """The name of ``owner``'s own arms for question type ``kind``: their evidence adds to the
    shared arms' only when ``choose`` is asked for that owner (``personal=``)."""
    return f"{kind}@{owner}"


def _shared_kind(kind: str) -> str | None:
    base, at, _ = kind.partition("@")
    return base if at else None


@dataclass
class _Arm:
    prior: float
    evidence: float = 0.0  # discounted sum of reward x weight
    weight: float = 0.0  # discounted sum of weights
    observations: int = 0

    def mean(self, prior_weight: float) -> float:
        return (self.prior * prior_weight + self.evidence) / (prior_weight + self.weight)


@dataclass(frozen=True)
class Choice:
    model: str
    explored: bool
    estimate: float
    estimates: dict[str, float]


class ModelBandit:
    def __init__(
        self,
        *,
        exploration: float = 0.1,
        discount: float = 0.97,
        prior_weight: float = 5.0,
        rng: random.Random | None = None,
        on_observe: Callable[[str, str, float, float, float], None] | None = None,
    ):
        """``on_observe(kind, model, reward, weight, prior)`` hears every observation (replicas
        share them through Redis and ``load`` the shared estimates back)."""
        self.exploration = exploration
        self.discount = discount
        self.prior_weight = prior_weight
        self.on_observe = on_observe
        self._rng = rng or random.Random()
        self._arms: dict[tuple[str, str], _Arm] = {}
        self._lock = threading.Lock()

    def _arm(self, kind: str, model: str, prior: float) -> _Arm:
        arm = self._arms.get((kind, model))
        if arm is None:
            arm = self._arms[(kind, model)] = _Arm(prior)
        return arm

    def _estimate(self, kind: str, model: str, prior: float, personal: str | None) -> float:
        arm = self._arm(kind, model, prior)
        own = self._arms.get((personal, model)) if personal is not None else None
        return self._pooled(arm, own)

    def _pooled(self, arm: _Arm, own: _Arm | None) -> float:
        if own is None:
            return arm.mean(self.prior_weight)
        # One pool of evidence: everyone's, plus this owner's own (which only it is routed on).
        evidence, weight = arm.evidence + own.evidence, arm.weight + own.weight
        return (arm.prior * self.prior_weight + evidence) / (self.prior_weight + weight)

    def choose(self, kind: str, priors: Mapping[str, float], *, personal: str | None = None) -> Choice:
        """Pick one of ``priors``' models (non-empty) for a question of type ``kind``; with
        ``personal``, the arms of that name add their evidence to ``kind``'s (a tenant's own)."""
        with self._lock:
            estimates = {m: self._estimate(kind, m, p, personal) for m, p in priors.items()}
            explore = len(estimates) > 1 and self._rng.random() < self.exploration
        best = max(estimates, key=lambda m: (estimates[m], priors[m]))
        model = self._rng.choice([m for m in estimates if m != best]) if explore else best
        return Choice(model, explore, estimates[model], estimates)

    def observe(self, kind: str, model: str, reward: float, *, weight: float = 1.0, prior: float = 0.5) -> None:
        """Learn ``reward`` (clipped to 0..1) for ``model`` on ``kind`` questions."""
        reward = min(1.0, max(0.0, reward))
        with self._lock:
            arm = self._arm(kind, model, prior)
            arm.evidence = arm.evidence * self.discount + reward * weight
            arm.weight = arm.weight * self.discount + weight
            arm.observations += 1
        if self.on_observe is not None:
            self.on_observe(kind, model, reward, weight, prior)

    def load(self, kind: str, model: str, *, prior: float, evidence: float, weight: float, observations: int) -> None:
        """Replace an arm's evidence with the shared one."""
        with self._lock:
            self._arms[(kind, model)] = _Arm(prior, evidence, weight, observations)

    def _snapshot_estimate(self, kind: str, model: str, arm: _Arm) -> float:
        shared = _shared_kind(kind)
        base = self._arms.get((shared, model)) if shared is not None else None
        return self._pooled(base, arm) if base is not None else arm.mean(self.prior_weight)

    def snapshot(self) -> dict[str, list[dict[str, float | int | str]]]:
        """Every arm's estimate by question type, best first; an owner's arms show the estimate
        its questions are routed on (shared and own evidence together)."""
        with self._lock:
            rows = [
                (kind, model, self._snapshot_estimate(kind, model, arm), arm)
                for (kind, model), arm in self._arms.items()
            ]
        table: dict[str, list[dict[str, float | int | str]]] = {}
        for kind, model, estimate, arm in sorted(rows, key=lambda row: (row[0], -row[2])):
            table.setdefault(kind, []).append(
                {"model": model, "estimate": round(estimate, 4), "prior": arm.prior, "observations": arm.observations}
            )
        return table


def rank_priors(preference: Sequence[str]) -> dict[str, float]:
    """Prior mean rewards from a preference order: 0.8 for the first choice, 0.1 less per rank."""
    return {model: round(0.8 - 0.1 * rank, 2) for rank, model in enumerate(preference)}
