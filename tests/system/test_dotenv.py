""".env reaches the environment, so the variables the SDKs read themselves work from it: LangSmith
tracing above all, checked against a real server process and a stand-in LangSmith API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.apps import TEST_GOOGLE_KEY, TEST_OPENAI_KEY
from tests.helpers.processes import ROOT, free_port, wait_healthy
from tests.helpers.provider_double import ProviderDouble
from tests.helpers.receivers import TracePart, TraceReceiver

# LangSmith tracing from .env, in a real server process.

LANGSMITH_KEY = "lsv2_pt_fake-key-for-the-stand-in-0123456789"
PROJECT = "dotenv-traces"
SERVER = [sys.executable, str(ROOT / "server.py")]
UVICORN_FACTORY = [sys.executable, "-m", "uvicorn", "server:create_app", "--factory", "--app-dir", str(ROOT)]


@pytest.fixture(scope="module")
def stand_in() -> Iterator[TraceReceiver]:
    receiver = TraceReceiver()
    server = receiver.start()
    yield receiver
    server.should_exit = True


@pytest.fixture
def langsmith(stand_in: TraceReceiver) -> TraceReceiver:
    stand_in.reset()
    return stand_in


@contextmanager
def server_in(folder: Path, command: list[str], stop: signal.Signals) -> Iterator[str]:
    """``command`` run with ``folder`` as its working directory (where its .env, var/ and log are)
    and none of the developer's provider, LangSmith or server variables; yields its URL. ``stop``
    ends it, and the process has exited when this returns."""
    port = free_port()
    prefixes = ("OPENAI_", "GOOGLE_", "GEMINI_", "REDIS_", "LANGSMITH_", "LANGCHAIN_", "LLM_SERVER_", "PYTHON_DOTENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["NO_PROXY"] = "127.0.0.1,localhost"  # the double and the stand-in are local, whatever proxy is set
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(process, url)
            yield url
        finally:
            process.send_signal(stop)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def write_env_file(folder: Path, double: ProviderDouble, receiver: TraceReceiver, switch: str) -> None:
    """The .env of these tests: providers pointed at the double, LangSmith at the stand-in, and
    ``switch`` (a ``LANGSMITH_TRACING`` line, or nothing)."""
    lines = [
        switch,
        f"LANGSMITH_ENDPOINT={receiver.url}",
        f"LANGSMITH_API_KEY={LANGSMITH_KEY}",
        f"LANGSMITH_PROJECT={PROJECT}",
        f"OPENAI_API_KEY={TEST_OPENAI_KEY}",
        f"OPENAI_BASE_URL={double.url}/v1",
        f"GOOGLE_API_KEY={TEST_GOOGLE_KEY}",
        f"GOOGLE_GEMINI_BASE_URL={double.url}",
        "GEMINI_API_VERSION=v1beta",
    ]
    (folder / ".env").write_text("\n".join(line for line in lines if line) + "\n")


QUESTION = "What is a circuit breaker?"


def ask(url: str, model: str) -> dict[str, Any]:
    body = {"input": {"question": QUESTION}, "config": {"configurable": {"llm_model": model}}}
    response = httpx.post(f"{url}/chat/invoke", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["output"].startswith(f"{'gpt-4o-mini' if model == 'openai' else 'gemini'}"), answer
    return answer


def runs_by_id(parts: list[TracePart]) -> dict[str, dict[str, Any]]:
    """Each run as LangSmith would store it: its start (``post``) and end (``patch``) merged, with
    the fields sent as parts of their own (``inputs``, ``outputs``, ``extra``) in place."""
    runs: dict[str, dict[str, Any]] = {}
    for part in parts:
        _, run_id, *field = part.name.split(".")
        run = runs.setdefault(run_id, {})
        if field:
            run[field[0]] = part.data
        else:
            run.update(part.data)
    return runs


@pytest.mark.parametrize(
    ("command", "stop"),
    [
        # python server.py ends on SIGTERM with SystemExit, so the tracing thread drains its queue at exit.
        pytest.param(SERVER, signal.SIGTERM, id="python server.py"),
        # uvicorn dies by the SIGTERM it re-raises after shutting down, losing what is still queued;
        # on SIGINT it exits normally.
        pytest.param(UVICORN_FACTORY, signal.SIGINT, id="uvicorn --factory"),
    ],
)
def test_langsmith_tracing_switched_on_in_env_file_sends_the_trace(
    double: ProviderDouble, langsmith: TraceReceiver, tmp_path: Path, command: list[str], stop: signal.Signals
) -> None:
    write_env_file(tmp_path, double, langsmith, "LANGSMITH_TRACING=true")

    with server_in(tmp_path, command, stop) as url:
        answer = ask(url, "openai")
        ask(url, "gemini")

    requests = langsmith.requests()
    posts = [r for r in requests if r.method == "POST"]
    assert posts, f"no trace reached the stand-in LangSmith; got {[(r.method, r.path) for r in requests]}"
    assert all(r.headers.get("x-api-key") == LANGSMITH_KEY for r in requests)
    runs = runs_by_id(langsmith.runs())
    root = runs[answer["metadata"]["run_id"]]
    assert (root["name"], root["run_type"], root["session_name"]) == ("/chat", "chain", PROJECT)
    assert root["inputs"]["question"] == QUESTION
    assert root["outputs"] == {"output": answer["output"]}
    assert root.get("end_time"), "the root run's end never arrived"
    models = [
        run["extra"]["invocation_params"].get("model")
        for run in runs.values()
        if run.get("run_type") == "llm" and run.get("trace_id") == root["id"]
    ]
    assert models == ["gpt-4o-mini"]
    sent = b"".join(r.body for r in requests)
    assert TEST_OPENAI_KEY.encode() not in sent and TEST_GOOGLE_KEY.encode() not in sent
    assert LANGSMITH_KEY.encode() not in sent  # a header, never trace content


@pytest.mark.parametrize("switch", ["LANGSMITH_TRACING=false", ""], ids=["false", "unset"])
def test_without_the_switch_nothing_reaches_langsmith(
    double: ProviderDouble, langsmith: TraceReceiver, tmp_path: Path, switch: str
) -> None:
    """The mirror of the test above: same .env but the switch, same requests, same flush at exit."""
    write_env_file(tmp_path, double, langsmith, switch)

    with server_in(tmp_path, SERVER, signal.SIGTERM) as url:
        ask(url, "openai")
        ask(url, "gemini")

    assert langsmith.requests() == []
