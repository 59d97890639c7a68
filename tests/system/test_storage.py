"""The SQLite call store of a live ``python server.py``: what SIGKILL loses. (The store on its own:
``tests/unit/test_storage.py``.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.files import rows
from tests.helpers.processes import ROOT, free_port, wait_healthy


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    db = tmp_path / "monitoring.sqlite3"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GOOGLE_", "GEMINI_"))}
    env.update(LLM_SERVER_LOCAL_MAX_TOKENS="4", LLM_SERVER_MONITORING_DB_PATH=str(db))
    env["LLM_SERVER_MONITORING_FLUSH_INTERVAL_S"] = "0.5"
    process = subprocess.Popen(
        [sys.executable, "server.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(process, url)
        payload = {"input": {"question": "Hi"}, "config": {"configurable": {"llm_model": "local"}}}
        for _ in range(10):
            assert httpx.post(f"{url}/chat/invoke", json=payload, timeout=30).status_code == 200
        answered = time.monotonic()
        # Read-only polling of the file: every record must be on disk within one flush interval.
        while rows(db) < 10 and time.monotonic() - answered < 1.0:
            time.sleep(0.05)
        on_disk_within_a_second = rows(db)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    assert on_disk_within_a_second == 10
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert rows(db) == 10
