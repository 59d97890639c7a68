"""Real processes for the tests: ``python server.py`` and ``redis-server``, each on a free port; and
an app of the test's own served over real HTTP by uvicorn, in the test's event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent.parent
REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(process: subprocess.Popen[bytes], url: str, timeout_s: float = 60, path: str = "/health") -> None:
    deadline = time.monotonic() + timeout_s
    while True:  # readiness probe of a separate process: there is no event to wait on
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not become healthy in {timeout_s:g} s")
        time.sleep(0.1)


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    """Wait until ``check()`` holds, for facts another process makes true on its own schedule
    (there is no event to wait on across processes)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.05)


@contextmanager
def uvicorn_process(
    factory: str, env: Mapping[str, str], *, ready_path: str, backlog: int, keep_alive_s: int
) -> Iterator[tuple[str, int]]:
    """``factory`` ("module:function" returning an app) served by uvicorn in a process of its own,
    once ``ready_path`` answers 200; yields its URL and process id."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", factory, "--factory", "--port", str(port), "--log-level", "warning",
               "--no-access-log", "--backlog", str(backlog), "--timeout-keep-alive", str(keep_alive_s)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=dict(env))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url, path=ready_path)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` over real HTTP (for browsers and for clients that hang up); yields its URL."""
    # A socket already listening: connections queue from now on, so there is no start-up to wait for.
    listening = socket.create_server(("127.0.0.1", 0))
    # lifespan off: a test's app shares the session's local model, which its shutdown would close.
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    running = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        await running
        listening.close()


@contextmanager
def server_process(folder: Path, settings: Mapping[str, str], *args: str) -> Iterator[str]:
    """``python server.py`` with ``settings`` in its environment (no provider variables from the
    developer's shell), its own SQLite file and log in ``folder``; yields its URL."""
    with server_popen(folder, settings, *args) as (process, url):
        yield url
        process.terminate()
        process.wait(timeout=15)


@contextmanager
def server_popen(
    folder: Path, settings: Mapping[str, str], *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``server_process`` that yields the process too, started in a session of its own: whatever is
    left of it at the end (workers, the engine) is killed with its process group."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GOOGLE_", "GEMINI_", "REDIS_"))}
    env.update(
        LLM_SERVER_LOCAL_MAX_TOKENS="16",
        LLM_SERVER_MONITORING_DB_PATH=str(folder / "monitoring.sqlite3"),
        LLM_SERVER_SLOW_LOG_PATH=str(folder / "slow_calls.jsonl"),
    )
    env.update(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "server.py", "--port", str(port), *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(process, url)
            yield process, url
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


class RedisServer:
    """A throwaway ``redis-server`` (no persistence) that a test can kill and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert Path(REDIS_SERVER).exists(), "install Debian's redis-server (bash scripts/setup.sh test does it)"
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:  # its own log says when it listens
            if "Ready to accept connections" in line:
                return
        raise RuntimeError(f"redis-server exited with {self.process.wait()}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
