"""The keys CLI (``python -m policy.keys``), run as a process. (The policy parts on their own:
``tests/unit/test_policy.py``.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path

from policy.bandit import ModelBandit
from policy.classifier import QuestionClassifier
from policy.request_policy import RequestPolicy
from policy.routing import AdaptiveRouter
from policy.schedule import StyleSchedule
from policy.tiers import default_tiers
from tests.helpers.processes import ROOT


def policy(now: datetime, **options: object) -> RequestPolicy:
    router = AdaptiveRouter(ModelBandit(exploration=0.0), ["openai", "gpt4", "gemini", "local"])
    return RequestPolicy(
        classifier=QuestionClassifier(),
        schedule=StyleSchedule.parse("07-18=default,18-23=detailed,23-07=concise", "UTC"),
        router=router,
        tiers=default_tiers(),
        open_tier="enterprise",
        clock=lambda: now,
        **options,  # type: ignore[arg-type]
    )


def test_the_keys_cli_writes_a_name_as_one_toml_string(tmp_path: Path) -> None:
    crafted = 'mallory"\ntier = "enterprise"\n[[keys]]\nuser = "x'
    result = subprocess.run(
        [sys.executable, "-m", "policy.keys", "new", "--user", crafted, "--tier", "free"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip

    entries = tomllib.loads(result.stdout)["keys"]
    assert [(e["user"], e["tier"]) for e in entries] == [(crafted, "free")]
