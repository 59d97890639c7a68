"""``RequestPolicy``: the model, prompt style and temperature of one question, and why.

Who decides, first match wins:

1. The client's own ``configurable`` values, when its tier allows them (a model above the tier
   is refused with 403 before anything runs).
2. Policy: ``llm_model=auto`` (or ``/adaptive``) asks the ``AdaptiveRouter``; no model at all
   means the tier's default; the prompt style follows the time of day (``StyleSchedule``); the
   temperature follows the question's type and complexity.
3. The chain's own defaults (when ``policy_enabled`` is off: no style or temperature policy).

The server stamps ``user_id``, ``tier`` and ``access`` (the tier's models, its default, which
configurable ids the client really sent) into the run metadata; a direct caller without them is
treated as the open tier and every id it passes counts as its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from errors import ModelNotAllowed
from policy.adaptive_router import AdaptiveRouter
from policy.classifier import Classification, Complexity, QuestionClassifier, QuestionType
from policy.schedule import StyleSchedule
from policy.tiers import Tier
from vocabulary import AUTO, MODEL_ID, STYLE_ID, TEMPERATURE_ID, TEMPERATURE_RANGE
from vocabulary.models import REGISTRY
from vocabulary.run_metadata import ACCESS, API_KEY_ID, NEEDS, ROOT_RUN_ID, TIER, USER_ID

# Precise work wants low temperature, writing wants room; complex questions get a little less.
TEMPERATURE_BY_TYPE: dict[str, float] = {
    QuestionType.CODE: 0.2,
    QuestionType.MATH: 0.1,
    QuestionType.REASONING: 0.4,
    QuestionType.CREATIVE: 1.0,
    QuestionType.FACTUAL: 0.3,
    QuestionType.SMALLTALK: 0.8,
}
COMPLEXITY_SHIFT: dict[str, float] = {Complexity.SIMPLE: 0.1, Complexity.MODERATE: 0.0, Complexity.COMPLEX: -0.1}


@dataclass(frozen=True)
class Access:
    """What the caller may use, as the server stamped it (or the open tier's, for direct use)."""

    tier: str
    models: tuple[str, ...]
    default_model: str
    explicit: frozenset[str]

    @classmethod
    def of_tier(cls, name: str, tier: Tier, explicit: Iterable[str]) -> Access:
        return cls(name, tuple(tier.models), tier.default_model, frozenset(explicit))

    def as_metadata(self) -> dict[str, Any]:
        """The value the server stamps under ``access`` (the tier goes under ``tier``)."""
        return {
            "models": list(self.models),
            "default_model": self.default_model,
            "explicit": sorted(self.explicit),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Access | None:
        """The access a run's metadata carries (``as_metadata`` under ``access``, the tier under
        ``tier``), or None when the host stamped none."""
        stamped = metadata.get(ACCESS)
        if not isinstance(stamped, dict):
            return None
        return cls(
            tier=str(metadata.get(TIER)),
            models=tuple(stamped["models"]),
            default_model=str(stamped["default_model"]),
            explicit=frozenset(stamped["explicit"]),
        )


def check_model(access: Access, model: object) -> None:
    """Refuse a model the caller's tier does not include (``auto`` is open to every tier)."""
    if model is None or model == AUTO or model in access.models:
        return
    allowed = [*access.models, AUTO]
    raise ModelNotAllowed(
        f"the {access.tier} tier may not use llm_model={model!r}; allowed: {', '.join(allowed)}",
        details={"tier": access.tier, "allowed": allowed},
    )


@dataclass(frozen=True)
class Decision:
    configurable: dict[str, Any]
    routing: dict[str, Any] = field(default_factory=dict)


class RequestPolicy:
    def __init__(
        self,
        *,
        classifier: QuestionClassifier,
        schedule: StyleSchedule,
        router: AdaptiveRouter,
        tiers: Mapping[str, Tier],
        open_tier: str,
        enabled: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        capabilities: Mapping[str, frozenset[str]] | None = None,
    ):
        """``capabilities``: what each alternative can do beyond text (the built-in ones' by default)."""
        self.capabilities = capabilities or {entry.alternative: entry.capabilities for entry in REGISTRY}
        self.classifier = classifier
        self.schedule = schedule
        self.router = router
        self.tiers = tiers
        self.open_tier = open_tier
        self.enabled = enabled
        self._clock = clock

    def access_of(self, metadata: Mapping[str, Any], configurable: Mapping[str, Any]) -> Access:
        # Access stamped without a tier is the open tier's.
        stamped = Access.from_metadata({TIER: self.open_tier, **metadata})
        if stamped is not None:
            return stamped
        return Access.of_tier(self.open_tier, self.tiers[self.open_tier], configurable)

    def decide(
        self,
        question: str,
        configurable: Mapping[str, Any],
        metadata: Mapping[str, Any],
        *,
        force_auto: bool = False,
    ) -> Decision:
        access = self.access_of(metadata, configurable)
        now = self._clock()
        began = time.perf_counter()
        question_kind = self.classifier.classify(question)
        classify_us = (time.perf_counter() - began) * 1e6
        chosen: dict[str, Any] = {}
        routing: dict[str, Any] = {
            "question_type": str(question_kind.type),
            "complexity": str(question_kind.complexity),
            "language": question_kind.language,
            "classify_us": round(classify_us, 1),
        }
        # A keyed caller is a tenant: its own feedback steers its own routing (see AdaptiveRouter).
        tenant = str(metadata[USER_ID]) if metadata.get(API_KEY_ID) and metadata.get(USER_ID) else None
        chosen[MODEL_ID], routing["model_reason"] = self._model(
            access, question_kind, configurable, force_auto, tenant, frozenset(metadata.get(NEEDS) or ())
        )
        routing["model"] = chosen[MODEL_ID]
        if STYLE_ID in access.explicit:
            routing["prompt_style_reason"] = "set by the client"
        elif self.enabled:
            chosen[STYLE_ID] = self.schedule.style_at(now)
            local = now.astimezone(self.schedule.timezone)
            routing["prompt_style_reason"] = f"time of day: {local:%H:%M} {self.schedule.timezone.key}"
        if TEMPERATURE_ID in access.explicit:
            routing["temperature_reason"] = "set by the client"
        elif self.enabled:
            kind, level = str(question_kind.type), str(question_kind.complexity)
            low, high = TEMPERATURE_RANGE
            value = round(min(high, max(low, TEMPERATURE_BY_TYPE[kind] + COMPLEXITY_SHIFT[level])), 2)
            chosen[TEMPERATURE_ID] = value
            routing["temperature_reason"] = f"{kind} question, {level}: {value}"
        routing.update({STYLE_ID: chosen.get(STYLE_ID, configurable.get(STYLE_ID))})
        routing.update({"temperature": chosen.get(TEMPERATURE_ID, configurable.get(TEMPERATURE_ID))})
        self.router.remember(
            {"at": now.isoformat(), "run_id": metadata.get(ROOT_RUN_ID), "user_id": metadata.get(USER_ID),
             "tier": access.tier, **routing}
        )  # fmt: skip
        return Decision(chosen, routing)

    def _model(
        self,
        access: Access,
        question: Classification,
        configurable: Mapping[str, Any],
        force_auto: bool,
        tenant: str | None,
        needs: frozenset[str] = frozenset(),
    ) -> tuple[str, str]:
        asked = configurable.get(MODEL_ID) if MODEL_ID in access.explicit else None
        check_model(access, asked)
        if asked is not None and asked != AUTO and not force_auto:
            return str(asked), "set by the client"
        if force_auto or asked == AUTO or access.default_model == AUTO:
            # A request that needs tools or structured output is routed among the models that can.
            able = (
                [model for model in access.models if not needs - self.capabilities.get(model, frozenset())]
                if needs
                else access.models
            )
            choice = self.router.choose(question, able, tenant=tenant)
            return choice.model, choice.reason
        return access.default_model, f"the {access.tier} tier's default"
