"""The load benchmark as a CI check (``benchmarks/load.py``), bounded: 50 concurrent clients, 400
requests mixing invoke, stream and batch, 10% of provider requests failing at random. (Its checks
on planted faults: ``tests/unit/test_load.py``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.processes import ROOT


def test_bounded_load_no_client_request_fails_and_every_call_is_recorded_once(tmp_path: Path) -> None:
    figures_file = tmp_path / "load.json"
    command = [sys.executable, "benchmarks/load.py", "--clients", "50", "--requests", "400", "--duration", "0",
               "--json", str(figures_file)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=110)

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    figures = json.loads(figures_file.read_text())
    assert figures["problems"] == [] and figures["client_failures"] == {}
    assert sum(figures["requests"].values()) == 400 and all(figures["requests"].values())
    assert {"500", "503", "429", "cut_mid_stream"} <= set(figures["injected_faults"])
    assert figures["record_outcomes"]["error"] == sum(figures["injected_faults"].values()) > 20
    assert figures["fallback_answers"] > 0
    # At a 10% failure rate the first rung stays open: a breaker that judged calls in the order
    # they end would open on the burst's first failures and send most answers to rung 1.
    assert figures["answers_by_rung"]["0"] >= 0.8 * figures["questions"]
