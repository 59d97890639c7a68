"""A crash of the local engine costs the local calls in flight, never the server.

The engine's process is killed for real (SIGSEGV as llama.cpp's crash on a CPU that does not grant
an instruction, SIGKILL as the kernel's out-of-memory killer) while a local stream or invoke is in
flight and remote requests are answered by the provider double: the remote requests finish, the
local call fails with cause ``engine_crashed`` (recorded, alerted, named in the 503 or the stream's
error event), the supervisor starts a new engine and the next local question is answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from providers.engine_client import EngineClient
from providers.engine_supervisor import EngineOptions, EngineState, EngineSupervisor
from settings import Settings
from tests.helpers.apps import AppFactory, settings_for, sse_events
from tests.helpers.engine import engine_status_until, supervised_engine
from tests.helpers.processes import serving
from tests.helpers.provider_double import Behaviour, ProviderDouble
from wiring.models import engine_options

LOCAL_MODEL = "SmolLM2-135M-Instruct"
LONG = "Write a long story about a dragon who learns to bake bread, with many details."


def ask(model: str, question: str = LONG) -> dict[str, Any]:
    return {"input": {"question": question}, "config": {"configurable": {"llm_model": model}}}


@pytest.fixture
def engine() -> Iterator[tuple[EngineSupervisor, EngineClient]]:
    """An engine of this test's own: it gets killed."""
    with supervised_engine(Settings(_env_file=None)) as pair:
        yield pair


@pytest.fixture
async def app(
    double: ProviderDouble, make_app: AppFactory, engine: tuple[EngineSupervisor, EngineClient]
) -> AsyncIterator[FastAPI]:
    double.set("gpt-4o-mini", Behaviour(delay_s=1.0))  # remote answers still in flight at the kill
    yield make_app(settings_for(double, local_max_tokens=256), engine=engine[1])
    await engine[1].aclose()


async def assert_recovers(http: httpx.AsyncClient, supervisor: EngineSupervisor, app: FastAPI, killed_by: str) -> None:
    assert await asyncio.to_thread(supervisor.wait_ready, 1), "the engine was not restarted"
    health = (await http.get("/health")).json()["local_engine"]
    assert (health["state"], health["restarts"], health["last_exit"]) == ("ready", 1, f"killed by {killed_by}")
    assert health["pid"] == supervisor.pid

    again = await http.post("/chat/invoke", json=ask("local", "Name a colour."))
    assert again.status_code == 200
    assert again.headers["x-served-by"] == LOCAL_MODEL


def crash_alerted(app: FastAPI) -> bool:
    return any(
        alert["key"] == f"llm_error:{LOCAL_MODEL}" and "engine_crashed" in alert["message"]
        for alert in app.state.monitoring.engine.firing()
    )


async def test_a_segfault_mid_stream_ends_that_stream_only_and_the_engine_comes_back(
    app: FastAPI, engine: tuple[EngineSupervisor, EngineClient], double: ProviderDouble
) -> None:
    supervisor, _ = engine
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        remote = [asyncio.ensure_future(http.post("/chat/invoke", json=ask("openai", f"Q{i}"))) for i in range(3)]
        async with http.stream("POST", "/chat/stream", json=ask("local")) as stream:
            body, chunks = "", stream.aiter_text()
            async for text in chunks:
                body += text
                if "event: data" in body:  # the first text reached the client
                    break
            os.kill(supervisor.pid or 0, signal.SIGSEGV)
            async for text in chunks:
                body += text

        answers = await asyncio.gather(*remote)
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert {a.headers["x-served-by"] for a in answers} == {"gpt-4o-mini"}

        errors = [json.loads(data) for event, data in sse_events(body) if event == "error"]
        assert len(errors) == 1
        assert (errors[0]["status_code"], errors[0]["cause"]) == (502, "engine_crashed")
        request_id = stream.headers["x-request-id"]
        records = await app.state.monitoring.store.find(request_id=request_id)
        assert [(r.model, r.outcome, r.cause) for r in records] == [(LOCAL_MODEL, "error", "engine_crashed")]
        assert records[0].output_tokens > 0, "the tokens streamed before the crash are still counted"
        assert crash_alerted(app)

        await assert_recovers(http, supervisor, app, "SIGSEGV")


async def test_an_oom_kill_mid_invoke_answers_503_naming_the_crash_and_the_engine_comes_back(
    app: FastAPI, engine: tuple[EngineSupervisor, EngineClient]
) -> None:
    supervisor, client = engine
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s", timeout=60) as http:
        remote = [asyncio.ensure_future(http.post("/chat/invoke", json=ask("openai", f"Q{i}"))) for i in range(3)]
        local = asyncio.ensure_future(http.post("/chat/invoke", json=ask("local")))
        await engine_status_until(client, lambda s: s.get("generations", {}).get("running"), "a generation")
        os.kill(supervisor.pid or 0, signal.SIGKILL)  # what the kernel's OOM killer sends

        failed = await local
        assert failed.status_code == 503
        assert "retry-after" in failed.headers
        assert [(a["model"], a["cause"]) for a in failed.json()["attempts"]] == [(LOCAL_MODEL, "engine_crashed")]
        assert [a.status_code for a in await asyncio.gather(*remote)] == [200, 200, 200]
        assert crash_alerted(app)

        await assert_recovers(http, supervisor, app, "SIGKILL")


async def test_a_call_while_the_engine_is_down_fails_at_once_as_engine_crashed(
    engine: tuple[EngineSupervisor, EngineClient],
) -> None:
    supervisor, client = engine
    supervisor.stop()  # down, and nobody restarts it

    with pytest.raises(Exception) as caught:
        async for _ in client.astream([{"role": "user", "content": "hi"}], {"max_tokens": 4}):
            pass

    assert getattr(caught.value, "cause", None) == "engine_crashed"
    assert "not running" in str(caught.value)
    await client.aclose()


def test_an_engine_that_keeps_crashing_is_restarted_with_a_doubling_backoff(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")  # llama.cpp refuses it: the engine exits at every start
    options = engine_options(Settings(_env_file=None))
    assert options is not None
    supervisor = EngineSupervisor(replace(options, model_path=broken, backoff_s=0.05, max_backoff_s=0.2))
    waits: list[float] = []

    def restarting(state: EngineState) -> bool:  # sees every state the supervisor publishes
        if state.state == "restarting" and len(waits) == state.restarts:
            waits.append(state.backoff_s or 0)
        return len(waits) >= 5

    supervisor.start()
    try:
        assert supervisor.wait_until(restarting, timeout_s=60)
        history = list(supervisor.state.history)
    finally:
        supervisor.stop()

    assert waits == [0.05, 0.1, 0.2, 0.2, 0.2]  # doubling, up to the cap
    assert history == ["exit status 1"] * 5
    assert supervisor.state.state == "stopped"


@dataclass(frozen=True)
class FailingSpawns(EngineOptions):
    """The engine's own command once ``fail`` attempts to start it failed in the spawn itself, as
    fork does now and then under load (EFAULT, EAGAIN)."""

    fail: int = 2
    asked: list[Path] = field(default_factory=list)  # one socket path per start

    def command(self, socket_path: Path) -> list[str]:
        self.asked.append(socket_path)
        if len(self.asked) <= self.fail:
            return [str(socket_path.parent / "no-such-interpreter")]
        return super().command(socket_path)


def test_an_engine_that_cannot_be_spawned_is_tried_again_and_starts(tmp_path: Path) -> None:
    options = engine_options(Settings(_env_file=None))
    assert options is not None
    supervisor = EngineSupervisor(FailingSpawns(**{**vars(options), "backoff_s": 0.05}))

    supervisor.start()
    try:
        assert supervisor.wait_until(lambda state: state.state == "ready", timeout_s=60)
        state = supervisor.state
    finally:
        supervisor.stop()

    assert state.history == ["could not start (No such file or directory)"] * 2
    assert state.restarts == 2
