"""The real local engine in a supervised process of its own, and waiting on its status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from providers.engine_client import EngineClient
from providers.engine_supervisor import EngineSupervisor
from settings import Settings
from wiring.models import engine_client, engine_options


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
