"""The configurable fallback server: settings, app, routes, middleware. No logic lives here.

python server.py [--host H] [--port P] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI
from langchain_core.runnables import Runnable
from langserve import add_routes

from api.access import AccessMiddleware
from api.body_guard import SizeLimits, body_guard
from api.budgets import budgets_router
from api.config_guard import config_guard, stamp_root_run
from api.context import RequestContextMiddleware
from api.cross_site import LOCAL_HOSTS, CrossSiteGuard
from api.errors import AsciiJSONResponse, install_error_handlers
from api.faults import faults_router
from api.feedback import routing_router
from api.models_reload import models_reload_router
from api.monitoring import monitoring_router
from api.openai_errors import OpenAIErrorEnvelope
from api.openai_routes import DoorOptions, openai_router
from api.playground_guard import playground_guard
from api.request_tracing import trace_requests
from chains.config_schema import FormReadyConfig
from dashboard.routes import install_dashboard
from errors import ConfigurationError
from errors.secrets import install_log_redaction
from monitoring.metrics_exporter import MULTIPROCESS_DIR
from policy.keys import ApiKeyRing, Caller
from providers.engine_client import EngineClient
from resilience.ladder_policies import LadderPolicies
from settings import Settings, env_variable, load_env_file
from settings.models_file import load_models_file
from wiring import gc_tuning
from wiring.models import capabilities_of, own_engine
from wiring.policy import PolicyParts
from wiring.server_parts import ServerParts, build_server_parts, wait_for_engine
from wiring.shared_state import SharedState

logger = logging.getLogger("llm_server")

# LangServe 0.3.3 serializes configurable enums in a way pydantic 2.14 warns about; harmless.
warnings.filterwarnings("ignore", message=r".*PydanticSerializationUnexpectedValue.*")
warnings.filterwarnings("ignore", message=r".*Pydantic serializer warnings.*")


def create_app(
    settings: Settings | None = None,
    *,
    engine: EngineClient | None = None,
    chains: Mapping[str, Runnable[Any, Any]] | None = None,
    monitored: bool = True,
    resilience: LadderPolicies | None = None,
    policy: PolicyParts | None = None,
    shared: SharedState | None = None,
) -> FastAPI:
    """The app. ``chains`` (route name -> runnable) replaces the built-in ones for hosts that bring
    their own; ``monitored=False`` serves them without the monitoring callbacks (benchmarks);
    ``resilience`` and ``policy`` replace the breakers, keys, limits and routing built from
    settings (tests inject clocks and random generators); ``shared`` replaces the Redis link
    built from ``REDIS_URL``; ``engine`` replaces the local engine the app would start and
    supervise itself (one per server: ``main`` starts it for every worker)."""
    settings_given = settings
    if settings is None:  # `uvicorn server:create_app --factory` skips main(); loading again changes nothing
        load_env_file()
    settings = settings or Settings()
    _configure_logging(settings)  # again in each worker process: they do not inherit main()'s
    parts = build_server_parts(
        settings, engine=engine, chains=chains, resilience=resilience, policy=policy, shared=shared
    )
    monitoring, ladders, access = parts.monitoring, parts.resilience, parts.policy

    served_by_uvicorn = settings_given is None  # the real server: it owns the process's signals

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _log_providers(settings)
        _log_access(settings, access)
        await parts.start()
        if served_by_uvicorn:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload_models, parts)
        thresholds = gc_tuning.settled()  # what startup built lives on: out of every collection
        yield
        gc_tuning.released(thresholds)
        if served_by_uvicorn:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await parts.close()

    app = FastAPI(
        title="Configurable fallback server",
        description="LangServe chains with per-request model and prompt choice, fallbacks and monitoring.",
        lifespan=lifespan,
        default_response_class=AsciiJSONResponse,
    )
    app.state.settings = settings
    app.state.monitoring = monitoring
    app.state.engine = parts.engine
    app.state.http_clients = parts.models.clients
    app.state.resilience = ladders
    app.state.policy = access
    app.state.budgets = parts.budgets
    app.state.caching = parts.caching
    install_error_handlers(app, default_retry_after=settings.retry_after_s)
    routes = parts.chains
    open_tier = settings.tiers[settings.open_tier]
    # An open server on localhost answers only to localhost names, against DNS rebinding.
    local_only = access.keys.empty and not settings.allow_open_network
    app.add_middleware(CrossSiteGuard, allowed_hosts=settings.allowed_hosts or (LOCAL_HOSTS if local_only else None))
    app.add_middleware(
        AccessMiddleware,
        keys=access.keys,
        limits=access.limits,
        # Without keys the server is the operator's own (localhost): its anonymous caller is an admin.
        open_caller=Caller("anonymous", settings.open_tier, open_tier, key_id=None, admin=access.keys.empty),
        max_body_bytes=settings.max_body_bytes,
        # body_guard counts them, and the OpenAI-compatible door its own, knowing the body
        admitted_by_routes=[*(f"/{name}" for name in routes), "/v1/chat"],
    )
    app.add_middleware(OpenAIErrorEnvelope)
    telemetry = monitoring.telemetry
    app.add_middleware(  # added last: outermost, so even a 401 carries a request id
        RequestContextMiddleware,
        default_retry_after=settings.retry_after_s,
        on_response=monitoring.metrics.observe_request,
        client_ids=access.keys.empty,
        trace_ids=telemetry is not None and telemetry.tracer_provider is not None,
        on_overhead=monitoring.metrics.observe_overhead,
    )
    if telemetry is not None:  # the server span wraps every middleware above
        trace_requests(app, telemetry)

    sizes = SizeLimits(max_prompt_chars=settings.max_prompt_chars, max_batch_inputs=settings.max_batch_inputs)
    for name, chain in routes.items():
        served = FormReadyConfig(
            bound=chain,
            config={"callbacks": monitoring.handlers if monitored else []},
            config_factories=[stamp_root_run],
        )
        add_routes(
            app,
            served,
            path=f"/{name}",
            config_keys=("configurable", "tags", "metadata"),
            per_req_config_modifier=config_guard(
                name,
                chain.config_specs,
                max_metadata_bytes=settings.max_client_metadata_bytes,
                budgets=parts.budgets,
                cache=parts.caching.switch,
            ),
            dependencies=[Depends(body_guard(chain.input_schema, sizes, access.limits)), Depends(playground_guard)],
        )
    app.include_router(monitoring_router(monitoring, settings, parts.engine, ladders))
    app.include_router(routing_router(monitoring, access.router))
    ladder_rungs = {name: parts.ladder for name in ("fallback", "quality")}
    capabilities = capabilities_of(parts.models.endpoints)
    door = DoorOptions(ladder_rungs, settings.max_prompt_chars, settings.max_client_metadata_bytes, capabilities)
    app.include_router(
        openai_router(parts.door_chains, monitoring.handlers, access.limits, door, parts.budgets, parts.caching.switch)
    )
    app.include_router(budgets_router(parts.budgets))
    fault_control = settings.fault_control if settings.fault_control is not None else access.keys.empty
    app.include_router(faults_router(ladders.faults, parts.models.alternatives, control=fault_control))
    app.include_router(models_reload_router(parts.reload_models))
    install_dashboard(
        app,
        monitoring,
        ladders,
        access.router,
        parts.engine,
        fault_control=fault_control,
        budgets=parts.budgets,
        trace_ui_url=settings.trace_ui_url,
    )
    return app


def _reload_models(parts: ServerParts) -> None:
    """SIGHUP: read the models file again; a refused one is logged and alerted, the running
    configuration kept (uvicorn's own process manager restarts its workers on SIGHUP instead)."""
    try:
        parts.reload_models()
    except ConfigurationError as refused:
        logger.error("SIGHUP: %s", refused)


def _log_providers(settings: Settings) -> None:
    if settings.redis_url is None:
        logger.info("shared state: none (REDIS_URL unset); breakers, limits, spend and routing are this process's")
    for name, key in (("OpenAI", settings.openai_api_key), ("Gemini", settings.google_api_key)):
        if key is None:
            logger.info("%s: no key set; its alternatives fail fast and fall back to the local model", name)
        else:
            logger.info("%s: configured", name)


def _log_access(settings: Settings, access: PolicyParts) -> None:
    if access.keys.empty:
        logger.warning(
            "running OPEN: no API keys configured (LLM_SERVER_API_KEYS_FILE), so every caller gets the %s tier "
            "and anyone who can reach this server may use it",
            settings.open_tier,
        )
    else:
        logger.info("API keys: %d configured; requests without a valid key get 401", len(access.keys))


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction(settings.secret_values())  # libraries log URLs and exception text we do not compose


def main() -> None:
    load_env_file()  # first: LangSmith and the SDKs read os.environ, and langsmith caches what it read
    settings = Settings()
    _configure_logging(settings)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=settings.workers)
    args = parser.parse_args()
    if args.workers > 1:
        _share_metrics(settings.metrics_dir)
        if settings.redis_url is None and settings.budgets:
            # Each worker would hold the whole budget: N workers could spend N times the limit.
            parser.error(
                f"{args.workers} workers share budgets only through Redis: set REDIS_URL, or run one worker "
                "(LLM_SERVER_BUDGETS is set)"
            )
        if settings.redis_url is None:
            logger.warning(
                "%d workers without REDIS_URL: each keeps its own breakers, limits, spend and routing", args.workers
            )
    if settings.api_keys_file is None and not settings.allow_open_network and not _is_loopback(args.host):
        parser.error(
            f"no API keys are configured, so the server only runs on localhost, not on {args.host}: set "
            "LLM_SERVER_API_KEYS_FILE (see README, 'API keys and tiers'), or LLM_SERVER_ALLOW_OPEN_NETWORK=true"
        )
    try:  # before anything starts: a keys file that yields no keys would run the server open
        ApiKeyRing.from_file(settings.api_keys_file, settings.tiers)
        load_models_file(settings.models_file)
    except ConfigurationError as exc:
        parser.error(str(exc))
    # One engine for the whole server, started before the workers, which find it through the variable.
    supervisor = own_engine(settings)
    if supervisor is not None:
        supervisor.start()
        os.environ[env_variable("local_engine_dir")] = str(supervisor.folder)
        wait_for_engine(supervisor)
    # uvicorn re-raises the SIGTERM it shut down for: as SystemExit, so `finally` stops the engine.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            "server:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            timeout_keep_alive=settings.keep_alive_s,
            log_level=settings.log_level,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _share_metrics(folder: Path) -> None:
    """Let every worker write its Prometheus values to ``folder`` (emptied: old workers are gone)
    so /metrics on any of them adds up the whole server. Workers inherit the variable and read it
    when they import prometheus-client."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = str(folder.resolve())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()
