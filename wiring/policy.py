"""``PolicyParts``: who may call and what each question gets, built once from settings: the API
key ring, per-key limits, the request policy and the adaptive router it consults."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from policy.adaptive_router import AdaptiveRouter
from policy.bandit import ModelBandit
from policy.classifier import QuestionClassifier
from policy.keys import ApiKeyRing
from policy.limits import CallerLimits, TokenMeter
from policy.request_policy import RequestPolicy
from policy.schedule import StyleSchedule
from settings import Settings
from wiring.shared_state import SharedState


@dataclass
class PolicyParts:
    keys: ApiKeyRing
    limits: CallerLimits
    router: AdaptiveRouter
    policy: RequestPolicy
    meter: TokenMeter

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        available: Collection[str],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        shared: SharedState | None = None,
        capabilities: Mapping[str, frozenset[str]] | None = None,
    ) -> PolicyParts:
        """``available``: the alternatives that can answer; ``rng`` drives the bandit's
        exploration and ``clock`` the time-of-day styles (tests pass fixed ones); ``shared``
        shares limits and routing statistics with other replicas; ``capabilities``: what each
        alternative can do beyond text (the built-in ones' by default)."""
        shared = shared or SharedState()
        bandit = ModelBandit(exploration=settings.routing_exploration, discount=settings.routing_discount, rng=rng)
        shared.share(bandit)
        router = AdaptiveRouter(bandit, available, answers=shared.answers())
        policy = RequestPolicy(
            classifier=QuestionClassifier(),
            schedule=StyleSchedule.parse(settings.policy_prompt_styles, settings.policy_timezone),
            router=router,
            tiers=settings.tiers,
            open_tier=settings.open_tier,
            enabled=settings.policy_enabled,
            clock=clock,
            capabilities=capabilities,
        )
        limits = CallerLimits(shared.limit_counters())
        return cls(
            keys=ApiKeyRing.from_file(settings.api_keys_file, settings.tiers),
            limits=limits,
            router=router,
            policy=policy,
            meter=TokenMeter(limits, settings.tiers),
        )
