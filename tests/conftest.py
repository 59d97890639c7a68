"""Shared fixtures: the provider double, the real local model, and apps built from settings; and
the tier marker of every test, from its folder (unit/, service/, system/).

Provider variables from the developer's shell are removed for every test, and every remote
model is pointed at the double, so no test can reach a real provider.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI

from providers.engine_client import EngineClient
from providers.engine_supervisor import EngineSupervisor
from resilience.ladder_policies import LadderPolicies
from server import create_app
from settings import Settings
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.engine import supervised_engine
from tests.helpers.keys import keys_file, roomy_tiers
from tests.helpers.processes import RedisServer
from tests.helpers.provider_double import ProviderDouble
from tests.helpers.receivers import HttpReceiver
from tests.helpers.resilient import Made, resilient_apps
from wiring.models import engine_client
from wiring.policy import PolicyParts
from wiring.shared_state import SharedState

TIERS = ("unit", "service", "system")
HERE = Path(__file__).resolve().parent


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A test that timed out can leave a worker thread behind (an unclosed aiosqlite connection's),
    and the interpreter would wait for it forever after the summary: CI hung. Name it and exit."""
    leaked = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if leaked and _EXIT_STATUS:
        print(f"\nthreads left running after the tests (not waited for): {leaked}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(_EXIT_STATUS[-1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it lives in, so ``-m "unit or service"`` selects."""
    for item in items:
        folder = item.path.resolve().relative_to(HERE).parts[0]
        if folder not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(folder)


PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GEMINI_API_VERSION",
    "LANGSMITH_TRACING",
    "LANGCHAIN_TRACING_V2",
)


@pytest.fixture(autouse=True)
def _no_real_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # so no developer .env is read


@pytest.fixture(scope="session")
def provider_double() -> Iterator[ProviderDouble]:
    double = ProviderDouble()
    double.start()
    yield double
    double.stop()


@pytest.fixture
def double(provider_double: ProviderDouble) -> ProviderDouble:
    provider_double.reset()
    return provider_double


@pytest.fixture(scope="session")
def local_supervisor() -> Iterator[EngineSupervisor]:
    """The real embedded model in its engine process, started once for the whole run."""
    with supervised_engine(Settings(_env_file=None)) as (supervisor, _):
        yield supervisor


@pytest.fixture
def local_engine(local_supervisor: EngineSupervisor) -> EngineClient:
    """A client of the session's engine."""
    return engine_client(Settings(_env_file=None), local_supervisor.folder)


@asynccontextmanager
async def _app_builder(local_engine: EngineClient) -> AsyncIterator[AppFactory]:
    """Builds apps on the shared local model (or, with own_engine=True, on the one the settings
    name) and closes their monitoring at the end (SQLite connections, alert deliveries) and the
    providers' HTTP connections."""
    apps: list[FastAPI] = []

    def make(
        settings: Settings,
        *,
        own_engine: bool = False,
        engine: EngineClient | None = None,
        resilience: LadderPolicies | None = None,
        policy: PolicyParts | None = None,
        shared: SharedState | None = None,
    ) -> FastAPI:
        engine = None if own_engine else engine or local_engine
        app = create_app(settings, engine=engine, resilience=resilience, policy=policy, shared=shared)
        apps.append(app)
        return app

    try:
        yield make
    finally:
        for app in apps:
            await app.state.monitoring.close()
            await app.state.http_clients.aclose()


@pytest.fixture
async def make_app(local_engine: EngineClient) -> AsyncIterator[AppFactory]:
    """Apps of one test."""
    async with _app_builder(local_engine) as make:
        yield make


@pytest.fixture(scope="module")
async def make_shared_app(local_supervisor: EngineSupervisor) -> AsyncIterator[AppFactory]:
    """Apps that serve every test of a module: for tests that look only at what they caused (a
    refusal, their own request or run id), never at totals, limits or learned state. Building an
    app (LangServe's routes, the provider clients) is most of a service test's time."""
    async with _app_builder(engine_client(Settings(_env_file=None), local_supervisor.folder)) as make:
        yield make


@pytest.fixture
def remote_app(double: ProviderDouble, make_app: AppFactory) -> FastAPI:
    return make_app(settings_for(double))


@pytest.fixture
async def client(remote_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=remote_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as http:
        yield http


@pytest.fixture(scope="module")
async def shared_client(
    provider_double: ProviderDouble, make_shared_app: AppFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """``client``, on one app for the whole module (see ``make_shared_app``)."""
    transport = httpx.ASGITransport(app=make_shared_app(settings_for(provider_double)))
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as http:
        yield http


@pytest.fixture(scope="module")
async def shared_keyed(
    provider_double: ProviderDouble, make_shared_app: AppFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """One keyed app for a module's refusal tests: every tier's key and an admin's, limits no module
    reaches, fault control on (so only the role decides who may change faults)."""
    keys = keys_file(tmp_path_factory.mktemp("keys"))
    app = make_shared_app(settings_for(provider_double, api_keys_file=keys, tiers=roomy_tiers(), fault_control=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        yield http


@pytest.fixture(scope="session")
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    server = receiver.start()
    yield receiver
    receiver.reset()
    server.should_exit = True


@pytest.fixture
async def make_resilient(double: ProviderDouble, make_app: AppFactory) -> AsyncIterator[Callable[..., Made]]:
    """Apps whose breakers run on a ``FakeTime`` and whose retries only record their waits."""
    async with resilient_apps(double, make_app) as make:
        yield make


@pytest.fixture
def receiver(http_receiver: HttpReceiver) -> HttpReceiver:
    http_receiver.reset()
    return http_receiver


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url
