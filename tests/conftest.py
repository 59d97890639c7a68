"""Shared fixtures: the provider double, the real local model, and apps built from settings.

Provider variables from the developer's shell are removed for every test, and every remote
model is pointed at the double, so no test can reach a real provider.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from policy.kit import PolicyKit
from providers.catalog import engine_client, engine_options
from providers.engine_client import EngineClient
from providers.engine_supervisor import EngineSupervisor
from resilience.kit import ResilienceKit
from server import create_app
from settings import Settings
from shared_state.kit import SharedState
from tests.processes import RedisServer
from tests.provider_double import ProviderDouble
from tests.receivers import HttpReceiver

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
TEST_OPENAI_KEY = "sk-test-double-0123456789abcdef"
TEST_GOOGLE_KEY = "AIzaTestDouble0123456789abcdef"


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


@contextmanager
def supervised_engine(settings: Settings) -> Iterator[tuple[EngineSupervisor, EngineClient]]:
    """The real local engine in its own supervised process, and a client of it."""
    options = engine_options(settings)
    assert options is not None, "the local model file is missing: bash scripts/setup.sh installs it"
    supervisor = EngineSupervisor(options)
    supervisor.start()
    try:
        assert supervisor.wait_ready(), "the local engine did not start"
        yield supervisor, engine_client(settings, supervisor.folder)
    finally:
        supervisor.stop()


async def engine_status_until(
    engine: EngineClient, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The engine's status once ``check`` holds: a fact of another process, with no event to wait on."""
    status: dict[str, Any] = {}
    for _ in range(400):  # 10 s
        status = await engine.status()
        if check(status):
            return status
        await asyncio.sleep(0.025)
    raise AssertionError(f"the engine never reported {what}: {status}")


@pytest.fixture(scope="session")
def local_supervisor() -> Iterator[EngineSupervisor]:
    """The real embedded model in its engine process, started once for the whole run."""
    with supervised_engine(Settings(_env_file=None)) as (supervisor, _):
        yield supervisor


@pytest.fixture
def local_engine(local_supervisor: EngineSupervisor) -> EngineClient:
    """A client of the session's engine."""
    return engine_client(Settings(_env_file=None), local_supervisor.folder)


_FILES = Path(tempfile.mkdtemp(prefix="llm-server-tests-"))


def settings_for(double: ProviderDouble | None = None, **overrides: Any) -> Settings:
    """Settings for one test app: its own SQLite file, providers pointed at the double (if any)."""
    files = Path(tempfile.mkdtemp(dir=_FILES))
    values: dict[str, Any] = {
        "local_max_tokens": 12,
        "primary_timeout_s": 1.0,
        "provider_timeout_s": 5.0,
        "monitoring_db_path": files / "monitoring.sqlite3",
        "slow_log_path": files / "slow_calls.jsonl",
        "retry_attempts": 1,  # one try per rung unless a test is about retries
        "allowed_hosts": ["server", "s", "localhost", "127.0.0.1"],  # the in-process clients' base URLs
    }
    if double is not None:
        values.update(
            openai_api_key=TEST_OPENAI_KEY,
            openai_base_url=f"{double.url}/v1",
            google_api_key=TEST_GOOGLE_KEY,
            google_gemini_base_url=double.url,
            gemini_api_version="v1beta",
        )
    values.update(overrides)
    return Settings(_env_file=None, **values)


AppFactory = Callable[..., FastAPI]


@pytest.fixture
async def make_app(local_engine: EngineClient) -> AsyncIterator[AppFactory]:
    """Builds apps on the shared local model (or, with own_engine=True, on the one the settings
    name) and closes their monitoring at the end: SQLite connections, alert deliveries."""
    apps: list[FastAPI] = []

    def make(
        settings: Settings,
        *,
        own_engine: bool = False,
        engine: EngineClient | None = None,
        resilience: ResilienceKit | None = None,
        policy: PolicyKit | None = None,
        shared: SharedState | None = None,
    ) -> FastAPI:
        engine = None if own_engine else engine or local_engine
        app = create_app(settings, engine=engine, resilience=resilience, policy=policy, shared=shared)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.state.monitoring.close()


@pytest.fixture
def remote_app(double: ProviderDouble, make_app: AppFactory) -> FastAPI:
    return make_app(settings_for(double))


@pytest.fixture
async def client(remote_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=remote_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as http:
        yield http


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data or event != "message":
            events.append((event, "\n".join(data)))
    return events


@pytest.fixture(scope="session")
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    server = receiver.start()
    yield receiver
    receiver.reset()
    server.should_exit = True


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
