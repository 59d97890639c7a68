"""``python -m policy.keys new --admin`` writes an admin entry, and ``--tag`` the budget tags.
(Admin keys through the HTTP API: ``tests/service/test_roles.py``.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from policy.keys import ApiKeyRing
from policy.tiers import default_tiers
from tests.helpers.processes import ROOT


def new_key(*args: str) -> tuple[str, str]:
    """``python -m policy.keys new ...``: the key it prints, and the entry for the file."""
    result = subprocess.run(
        [sys.executable, "-m", "policy.keys", "new", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    comment, entry = result.stdout.split("[[keys]]")
    return comment.split()[-1], "[[keys]]" + entry


def test_policy_keys_new_with_admin_writes_an_admin_entry(tmp_path: Path) -> None:
    admin_key, admin_entry = new_key("--user", 'ops "root"\nadmin = true', "--tier", "pro", "--admin")
    plain_key, plain_entry = new_key("--user", "erin", "--tier", "pro")
    path = tmp_path / "api_keys.toml"
    path.write_text(f"{admin_entry}\n{plain_entry}")

    ring = ApiKeyRing.from_file(path, default_tiers())
    admin, plain = ring.authenticate(admin_key), ring.authenticate(plain_key)

    assert admin is not None and admin.admin and admin.user_id == 'ops "root"\nadmin = true'
    assert plain is not None and not plain.admin, "a crafted name did not make its own `admin = true` line"
    assert [entry.get("admin") for entry in tomllib.loads(path.read_text())["keys"]] == [True, None]


def test_policy_keys_new_with_tags_writes_the_budget_tags_the_key_may_charge(tmp_path: Path) -> None:
    key, entry = new_key("--user", "erin", "--tier", "pro", "--tag", "search", "--tag", "ads")
    path = tmp_path / "api_keys.toml"
    path.write_text(entry)

    caller = ApiKeyRing.from_file(path, default_tiers()).authenticate(key)

    assert caller is not None and caller.tags == frozenset({"search", "ads"})
