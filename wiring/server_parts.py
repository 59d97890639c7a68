"""``ServerParts``: the object graph of one server process, built from settings, started and
closed in order. ``server.create_app`` mounts it; tests and benchmarks replace single parts.

    shared state (Redis) -> monitoring (spend, alert claims), breaker sync, limits, routing, budgets
    call records -> each ladder try's cost -> budgets (holds settled, late calls charged)
    monitoring <- breaker changes, call latencies; -> the router and the token meter
    local engine (supervised by this process, or another's) -> the chains' local rungs
    response cache (Redis, or a SQLite file) -> the ladders' answers; its hits -> the call records
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import Runnable
from langchain_core.tracers.langchain import wait_for_all_tracers

from chains.serving_report import report_call
from errors import ConfigurationError
from policy.budget_book import BudgetBook
from providers.engine_client import EngineClient
from providers.engine_supervisor import EngineSupervisor
from resilience.ladder_policies import LadderPolicies
from settings import Settings
from settings.models_file import load_models_file
from vocabulary.models import FLOOR
from wiring.budgets import build_budget_book, gate_ladders
from wiring.caching import Caching, build_caching
from wiring.chains import ModelRungs, door_chains, ladder_options, served_chains
from wiring.models import capabilities_of, configured_alternatives, endpoints, engine_client, own_engine
from wiring.monitoring import Monitoring
from wiring.policy import PolicyParts
from wiring.resilience import build_ladder_policies
from wiring.shared_state import SharedState

logger = logging.getLogger("llm_server")


@dataclass
class ServerParts:
    settings: Settings
    engine: EngineClient
    supervisor: EngineSupervisor | None  # the engine this process started, if it did
    shared: SharedState
    monitoring: Monitoring
    resilience: LadderPolicies
    policy: PolicyParts
    chains: Mapping[str, Runnable[Any, Any]]  # the LangServe routes'
    door_chains: Mapping[str, Runnable[Any, Any]]  # the OpenAI-compatible door's, by route
    ladder: Sequence[str]  # the rungs of /fallback and /quality (settings, or the models file)
    models: ModelRungs
    budgets: BudgetBook
    caching: Caching

    def reload_models(self) -> dict[str, list[str]]:
        """Read the models file again and serve its deployments (by alternative, returned); a file
        that does not validate, or that changes the ladder (built into the routes: a restart's
        job), raises ``ConfigurationError`` with the running configuration kept, and alerts."""
        path = self.settings.models_file
        try:
            if path is None:
                raise ConfigurationError("no models file to reload: LLM_SERVER_MODELS_FILE is unset")
            catalog = load_models_file(path)
            ladder = list(catalog.fallback_ladder or self.settings.fallback_ladder)
            alternatives = list(endpoints(self.settings, catalog))
            if alternatives != self.models.alternatives:
                raise ConfigurationError(
                    f"{path}: the alternatives changed from {self.models.alternatives} to {alternatives}; "
                    "alternatives change with a restart. Nothing was reloaded"
                )
            if ladder != list(self.ladder):
                raise ConfigurationError(
                    f"{path}: the fallback ladder changed from {list(self.ladder)} to {ladder}; a ladder changes "
                    "with a restart. Nothing was reloaded"
                )
        except ConfigurationError as refused:
            self.monitoring.models_file_changed(str(path), str(refused))
            raise
        self.models.reload(catalog)
        served = {alt: [e.spec.endpoint for e in ends] for alt, ends in self.models.endpoints.items()}
        self.monitoring.models_file_changed(str(path), None)
        logger.warning("models file %s reloaded: %s", path, served)
        return served

    async def start(self) -> None:
        await self.monitoring.start()
        await self.shared.start()
        if self.supervisor is not None:
            self.supervisor.start()
            await asyncio.to_thread(wait_for_engine, self.supervisor)
        elif not self.engine.configured:
            logger.error("local model unavailable: no model file at %s", self.engine.model_path)

    async def close(self) -> None:
        # Traces still queued in langsmith's background thread would be lost at exit.
        await asyncio.to_thread(wait_for_all_tracers)
        await self.policy.meter.drain()
        await self.budgets.drain()
        await self.caching.close()  # before monitoring: its last writes are done, its hits recorded
        await self.monitoring.close()
        await self.shared.close()
        await self.models.clients.aclose()
        await self.engine.aclose()
        if self.supervisor is not None:
            await asyncio.to_thread(self.supervisor.stop)


def build_server_parts(
    settings: Settings,
    *,
    engine: EngineClient | None = None,
    chains: Mapping[str, Runnable[Any, Any]] | None = None,
    resilience: LadderPolicies | None = None,
    policy: PolicyParts | None = None,
    shared: SharedState | None = None,
) -> ServerParts:
    """Every part from ``settings``, except those passed in (tests inject clocks and random
    generators through them; ``engine``: one already running, shared by every worker)."""
    supervisor = own_engine(settings) if engine is None else None
    if engine is None:
        engine = engine_client(settings, supervisor.folder if supervisor else settings.local_engine_dir)
    shared = shared or SharedState.from_settings(settings)
    monitoring = Monitoring(settings, spend=shared.spend(), claim=shared.alert_claim(settings.alert_cooldown_s))
    resilience = resilience or build_ladder_policies(settings, monitoring.prices)
    resilience.breaker_sync = shared.breakers()
    monitoring.watch(resilience)
    if shared.link is not None:
        link = shared.link
        link.on_health = lambda healthy, detail: monitoring.shared_state_changed(healthy, detail, link.where)
    catalog = load_models_file(settings.models_file)  # a bad file refuses the start
    configured = configured_alternatives(settings, catalog)
    capabilities = capabilities_of(endpoints(settings, catalog))
    policy = policy or PolicyParts.from_settings(settings, configured, shared=shared, capabilities=capabilities)
    monitoring.feed(policy.router.observe, policy.meter, report_call)  # report_call: what a request used
    budgets = build_budget_book(settings, monitoring, shared)
    gate_ladders(budgets, resilience, monitoring)
    caching = build_caching(settings, monitoring, shared)
    resilience.answers = caching.answers
    models = ModelRungs(settings, engine, resilience, catalog)
    ladder = catalog.fallback_ladder or settings.fallback_ladder
    if ladder[-1] != FLOOR:
        logger.warning("the fallback ladder %s does not end at %r: when its models fail, requests fail", ladder, FLOOR)
    options = ladder_options(settings, ladder)
    chains = chains or served_chains(models, resilience, policy.policy, options)
    doors = door_chains(models, resilience, policy.policy, options)
    return ServerParts(
        settings, engine, supervisor, shared, monitoring, resilience, policy, chains, doors, ladder, models, budgets,
        caching,
    )  # fmt: skip


def wait_for_engine(supervisor: EngineSupervisor) -> None:
    """Warm-up: the engine loads its model before the server answers (a fraction of a second)."""
    if not supervisor.wait_ready():
        logger.error(
            "the local engine did not start within %g s; local calls fail as engine_crashed until it does",
            supervisor.options.start_timeout_s,
        )
