"""``EngineSupervisor``: starts the local engine's process, restarts it when it dies, stops it last.

One supervisor per server: ``server.py`` starts it before uvicorn, so every worker uses the same
engine through its socket; an app built without one (tests, ``uvicorn server:create_app``) starts
its own in its lifespan. A watcher thread waits on the child: when it exits, the thread records how
(``SIGSEGV``, ``SIGKILL``, ``exit status 1``), waits a backoff that doubles per crash in a row (and
starts again from the first after a stable run), and starts a new one. It publishes what it knows
in ``engine.json`` beside the socket, so every worker can show it in ``/health``, even while the
engine is down.

The child dies with its supervisor: it holds the read end of a pipe (its stdin) and, on Linux, the
parent-death signal, so no engine outlives a SIGTERM or a SIGKILL of the server.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from providers.engine_server import READY

logger = logging.getLogger("llm_server.engine")

STATE_FILE = "engine.json"
SOCKET_FILE = "engine.sock"


@dataclass(frozen=True)
class EngineOptions:
    """What the engine process is started with (from settings, in the composition root)."""

    model_path: Path
    context_tokens: int = 2048
    threads: int | None = None
    queue_size: int = 16
    queue_timeout_s: float = 60.0
    log_level: str = "info"
    start_timeout_s: float = 120.0  # loading the model; SmolLM2 takes well under a second
    backoff_s: float = 0.2  # first restart delay; doubles per crash in a row
    max_backoff_s: float = 30.0
    stable_s: float = 30.0  # a run this long resets the backoff

    def command(self, socket_path: Path) -> list[str]:
        command = [sys.executable, "-m", "providers.engine_server", "--socket", str(socket_path),
                   "--model", str(self.model_path), "--context-tokens", str(self.context_tokens),
                   "--queue-size", str(self.queue_size), "--queue-timeout-s", str(self.queue_timeout_s),
                   "--parent-pid", str(os.getpid()), "--log-level", self.log_level]  # fmt: skip
        if self.threads is not None:
            command += ["--threads", str(self.threads)]
        return command


@dataclass
class EngineState:
    """What ``engine.json`` holds: ``state`` is starting, ready, restarting or stopped."""

    state: str = "starting"
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: float | None = None  # Unix time
    next_start_at: float | None = None  # Unix time, while restarting
    backoff_s: float | None = None  # the wait before that start
    history: list[str] = field(default_factory=list)


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def read_state(folder: Path) -> EngineState | None:
    try:
        return EngineState(**json.loads((folder / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


class EngineSupervisor:
    def __init__(self, options: EngineOptions, folder: Path | None = None):
        self.options = options
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="llm-engine-"))
        self.socket_path = self.folder / SOCKET_FILE
        self.state = EngineState()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the engine and its watcher; returns at once (``wait_ready`` waits for the model)."""
        self._thread = threading.Thread(target=self._supervise, name="engine-supervisor", daemon=True)
        self._thread.start()

    def wait_ready(self, restarts: int = 0, timeout_s: float | None = None) -> bool:
        """Wait until the engine answers after at least ``restarts`` restarts; False on timeout."""
        return self.wait_until(lambda state: state.state == "ready" and state.restarts >= restarts, timeout_s)

    def wait_until(self, check: Callable[[EngineState], bool], timeout_s: float | None = None) -> bool:
        """Wait until ``check(state)`` holds; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: check(self.state), self.options.start_timeout_s if timeout_s is None else timeout_s
            )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _supervise(self) -> None:
        # Popen runs on this thread: the parent-death signal follows the thread that started the child.
        crashes_in_a_row = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            reason = self._run_once()
            if self._stopping.is_set():
                break
            crashes_in_a_row = 1 if time.monotonic() - started >= self.options.stable_s else crashes_in_a_row + 1
            delay = min(self.options.max_backoff_s, self.options.backoff_s * 2 ** (crashes_in_a_row - 1))
            logger.error("local engine %s; restarting in %.1f s", reason, delay)
            now = time.time()
            self._publish(
                state="restarting",
                pid=None,
                last_exit=reason,
                last_exit_at=now,
                next_start_at=now + delay,
                backoff_s=delay,
                history=[*self.state.history[-9:], reason],
            )
            if self._stopping.wait(delay):
                break
            self._publish(state="starting", restarts=self.state.restarts + 1, next_start_at=None)
        self._publish(state="stopped", pid=None, next_start_at=None)

    def _run_once(self) -> str:
        """Run the engine until it exits: why it did."""
        self.socket_path.unlink(missing_ok=True)
        with self._lock:
            if self._stopping.is_set():
                return "stopped"
            try:
                process = subprocess.Popen(
                    self.options.command(self.socket_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            except OSError as exc:  # seen: EFAULT from fork under load; a crash to back off from, not the end
                return f"could not start ({exc.strerror or exc})"
            self._process = process
        self._publish(state="starting", pid=process.pid, next_start_at=None)
        assert process.stdout is not None
        if process.stdout.readline() == READY:
            self._publish(state="ready")
        process.stdout.read()  # drained until the child exits, so it can never block writing
        return exit_reason(process.wait())

    def _publish(self, **changes: object) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(self.state, name, value)
            partial = self.folder / (STATE_FILE + ".partial")
            partial.write_text(json.dumps(asdict(self.state)))
            partial.replace(self.folder / STATE_FILE)  # readers never see half a file
            self._changed.notify_all()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the engine (SIGTERM, then SIGKILL) and its watcher."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
