"""The served chains from settings, on both doors: each alternative's chat model built once, the
ladders' options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import Runnable

from chains.builders import LadderOptions, build_chains, build_message_chains, with_temperature
from chains.rungs import Deployment, DeploymentPool, Rung
from policy.request_policy import RequestPolicy
from providers.engine_client import EngineClient
from resilience.ladder_policies import LadderPolicies
from settings import Settings
from settings.models_file import Endpoint, ModelsCatalog
from wiring.models import HttpClients, build_chat_model, endpoints


class ModelRungs:
    """Builds each deployment's chat model once (per key and timeout), so ladders share clients
    and the local engine; a rung is an alternative with the pool of deployments serving it, one
    pool per alternative and timeout, which ``reload`` refills from a new models file."""

    def __init__(
        self, settings: Settings, engine: EngineClient, resilience: LadderPolicies, catalog: ModelsCatalog | None = None
    ):
        self.settings = settings
        self.engine = engine
        self.resilience = resilience
        self.endpoints = endpoints(settings, catalog)
        self._built: dict[tuple[Endpoint, float | None], Runnable[Any, Any]] = {}
        self._pools: dict[tuple[str, float | None], DeploymentPool] = {}
        self.clients = HttpClients(settings.provider_http)

    @property
    def alternatives(self) -> list[str]:
        return list(self.endpoints)

    def rung(self, alternative: str, *, timeout_s: float | None = None) -> Rung:
        key = (alternative, timeout_s)
        if key not in self._pools:
            self._pools[key] = DeploymentPool(self._deployments(alternative, timeout_s))
        return Rung(self._pools[key])

    def reload(self, catalog: ModelsCatalog) -> None:
        """Serve ``catalog``'s deployments from now on: each pool refilled, the models of
        deployments that did not change kept (with them their clients; breakers and balancing
        statistics go by the deployment's name, so those of unchanged ones carry on)."""
        self.endpoints = endpoints(self.settings, catalog)
        kept = {key: model for key, model in self._built.items() if key[0] in self._all_endpoints()}
        self._built = kept
        for (alternative, timeout_s), pool in self._pools.items():
            pool.replace(self._deployments(alternative, timeout_s))

    def _all_endpoints(self) -> set[Endpoint]:
        return {keyed for served in self.endpoints.values() for endpoint in served for keyed in endpoint.keyed()}

    def _deployments(self, alternative: str, timeout_s: float | None) -> tuple[Deployment, ...]:
        return tuple(self._deployment(endpoint, timeout_s) for endpoint in self.endpoints[alternative])

    def _deployment(self, endpoint: Endpoint, timeout_s: float | None) -> Deployment:
        models = [(e.key_variable or "", self._model(e, timeout_s)) for e in endpoint.keyed()]
        return Deployment(endpoint.spec, models[0][1], tuple(models) if len(models) > 1 else ())

    def _model(self, endpoint: Endpoint, timeout_s: float | None) -> Runnable[Any, Any]:
        key = (endpoint, timeout_s)
        if key not in self._built:
            faults = self.resilience.faults
            model = build_chat_model(
                endpoint, self.settings, self.engine, timeout_s=timeout_s, faults=faults, clients=self.clients
            )
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
