"""The served chains from settings, on both doors: each alternative's chat model built once, the
ladders' options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import Runnable

from chains.builders import LadderOptions, build_chains, build_message_chains, with_temperature
from chains.ladder import Deployment, Rung
from policy.request_policy import RequestPolicy
from providers.engine_client import EngineClient
from resilience.ladder_policies import LadderPolicies
from settings import Settings
from settings.models_file import Endpoint, ModelsCatalog
from wiring.models import build_chat_model, endpoints


class ModelRungs:
    """Builds each deployment's chat model once (per timeout), so ladders share clients and the
    local engine; a rung is an alternative with every deployment that serves it."""

    def __init__(
        self, settings: Settings, engine: EngineClient, resilience: LadderPolicies, catalog: ModelsCatalog | None = None
    ):
        self.settings = settings
        self.engine = engine
        self.resilience = resilience
        self.endpoints = endpoints(settings, catalog)
        self._built: dict[tuple[str, str | None, float | None], Runnable[Any, Any]] = {}

    def rung(self, alternative: str, *, timeout_s: float | None = None) -> Rung:
        return Rung(tuple(self._deployment(endpoint, timeout_s) for endpoint in self.endpoints[alternative]))

    def _deployment(self, endpoint: Endpoint, timeout_s: float | None) -> Deployment:
        keyed = endpoint.keyed()
        models = [(e.key_variable or "", self._model(e, timeout_s)) for e in keyed]
        return Deployment(endpoint.spec, models[0][1], tuple(models) if len(models) > 1 else ())

    def _model(self, endpoint: Endpoint, timeout_s: float | None) -> Runnable[Any, Any]:
        key = (endpoint.spec.endpoint, endpoint.key_variable, timeout_s)
        if key not in self._built:
            faults = self.resilience.faults
            model = build_chat_model(endpoint, self.settings, self.engine, timeout_s=timeout_s, faults=faults)
            self._built[key] = with_temperature(model)
        return self._built[key]


def ladder_options(settings: Settings, ladder: Sequence[str]) -> LadderOptions:
    return LadderOptions(
        rungs=ladder,
        primary_timeout_s=settings.primary_timeout_s,
        min_chars=settings.quality_min_chars,
        forbidden_words=settings.quality_forbidden_words,
    )


def served_chains(
    models: ModelRungs, resilience: LadderPolicies, policy: RequestPolicy, options: LadderOptions
) -> dict[str, Runnable[Any, str]]:
    """Every LangServe route's chain by name (``chains.builders.build_chains``)."""
    return build_chains(models, resilience, policy, options)


def door_chains(
    models: ModelRungs, resilience: LadderPolicies, policy: RequestPolicy, options: LadderOptions
) -> dict[str, Runnable[Any, Any]]:
    """The OpenAI-compatible door's chains by route (``chains.builders.build_message_chains``), on
    the same models as the LangServe routes'."""
    return build_message_chains(models, resilience, policy, options)
