"""The keys CLI (``python -m policy.keys``), run as a process. (The policy parts on their own:
``tests/unit/test_policy.py``.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers.processes import ROOT


def test_the_keys_cli_writes_a_name_as_one_toml_string(tmp_path: Path) -> None:
    crafted = 'mallory"\ntier = "enterprise"\n[[keys]]\nuser = "x'
    result = subprocess.run(
        [sys.executable, "-m", "policy.keys", "new", "--user", crafted, "--tier", "free"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip

    entries = tomllib.loads(result.stdout)["keys"]
    assert [(e["user"], e["tier"]) for e in entries] == [(crafted, "free")]
