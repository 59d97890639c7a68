"""The configurable fallback server: settings, app, routes, middleware. No logic lives here.

python server.py [--host H] [--port P] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from langchain_core.runnables import Runnable
from langserve import add_routes

from api.config_guard import config_guard
from api.context import RequestContextMiddleware
from api.errors import install_error_handlers
from api.monitoring import monitoring_router
from callbacks.suite import MonitoringSuite
from chains.builders import build_chains
from errors import NotConfigured
from providers.catalog import build_engine
from providers.local_engine import LocalEngine
from resilience.kit import ResilienceKit
from settings import Settings

logger = logging.getLogger("llm_server")

# LangServe 0.3.3 serializes configurable enums in a way pydantic 2.14 warns about; harmless.
warnings.filterwarnings("ignore", message=r".*PydanticSerializationUnexpectedValue.*")
warnings.filterwarnings("ignore", message=r".*Pydantic serializer warnings.*")


def create_app(
    settings: Settings | None = None,
    *,
    engine: LocalEngine | None = None,
    chains: Mapping[str, Runnable[Any, Any]] | None = None,
    monitored: bool = True,
    resilience: ResilienceKit | None = None,
) -> FastAPI:
    """The app. ``chains`` (route name -> runnable) replaces the built-in ones for hosts that bring
    their own; ``monitored=False`` serves them without the monitoring callbacks (benchmarks);
    ``resilience`` replaces the breakers and policies built from settings (tests inject clocks)."""
    settings = settings or Settings()
    # Also runs in each worker process, which does not inherit main()'s logging set-up.
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = engine or build_engine(settings)
    suite = MonitoringSuite(settings)
    kit = resilience or ResilienceKit.from_settings(settings, suite.prices)
    suite.watch(kit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _log_providers(settings)
        await suite.start()
        try:
            await asyncio.to_thread(engine.warm_up)
        except NotConfigured as exc:
            logger.error("local model unavailable: %s", exc)
        yield
        await suite.close()
        engine.close()

    app = FastAPI(
        title="Configurable fallback server",
        description="LangServe chains with per-request model and prompt choice, fallbacks and monitoring.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.monitoring = suite
    app.state.engine = engine
    app.state.resilience = kit
    install_error_handlers(app, default_retry_after=settings.retry_after_s)
    app.add_middleware(
        RequestContextMiddleware,
        default_retry_after=settings.retry_after_s,
        on_response=suite.metrics.observe_request,
    )

    for name, chain in (chains or build_chains(settings, engine, kit)).items():
        add_routes(
            app,
            chain.with_config(callbacks=suite.handlers if monitored else []),
            path=f"/{name}",
            config_keys=("configurable", "tags", "metadata"),
            per_req_config_modifier=config_guard(name, chain.config_specs),
        )
    app.include_router(monitoring_router(suite, settings, engine, kit))
    return app


def _log_providers(settings: Settings) -> None:
    for name, key in (("OpenAI", settings.openai_api_key), ("Gemini", settings.google_api_key)):
        if key is None:
            logger.info("%s: no key set; its alternatives fail fast and fall back to the local model", name)
        else:
            logger.info("%s: configured", name)


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=settings.workers)
    args = parser.parse_args()
    uvicorn.run(
        "server:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
