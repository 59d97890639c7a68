"""API keys at start-up, against ``python server.py``: without keys it will not listen beyond
localhost, and a keys file that yields no keys stops the start. (Through the HTTP API:
``tests/service/test_access.py``.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT


def start_on_every_interface(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python server.py --host 0.0.0.0``, expected to refuse before it listens."""
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--host", "0.0.0.0", "--port", "1"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )


def test_without_keys_the_server_refuses_to_listen_beyond_localhost(tmp_path: Path) -> None:
    result = start_on_every_interface(tmp_path)

    assert result.returncode == 2
    assert "LLM_SERVER_API_KEYS_FILE" in result.stderr


@pytest.mark.parametrize("text", ["", "[[key]]\nuser = 'a'\ntier = 'free'\nkey = 'lsk_0123456789abcdef'\n"])
def test_a_keys_file_that_yields_no_keys_stops_the_start(tmp_path: Path, text: str) -> None:
    keys = tmp_path / "api_keys.toml"
    keys.write_text(text)
    result = start_on_every_interface(tmp_path, LLM_SERVER_API_KEYS_FILE=str(keys))

    assert result.returncode == 2
    assert str(keys) in result.stderr
    assert "[[keys]]" in result.stderr
