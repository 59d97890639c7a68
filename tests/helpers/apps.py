"""Settings and apps for tests: providers pointed at the double, a file folder per app; reading
what an app recorded and streamed."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from settings import Settings
from tests.helpers.provider_double import ProviderDouble
from wiring.models import configured_alternatives
from wiring.policy import PolicyParts

TEST_OPENAI_KEY = "sk-test-double-0123456789abcdef"
TEST_GOOGLE_KEY = "AIzaTestDouble0123456789abcdef"

EVENING = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
_FILES = Path(tempfile.mkdtemp(prefix="llm-server-tests-"))


def settings_for(double: ProviderDouble | None = None, **overrides: Any) -> Settings:
    """Settings for one test app: its own SQLite file, providers pointed at the double (if any)."""
    files = Path(tempfile.mkdtemp(dir=_FILES))
    values: dict[str, Any] = {
        "local_max_tokens": 12,
        "primary_timeout_s": 1.0,
        "provider_timeout_s": 5.0,
        "monitoring_db_path": files / "monitoring.sqlite3",
        "slow_log_path": files / "slow_calls.jsonl",
        "retry_attempts": 1,  # one try per rung unless a test is about retries
        "allowed_hosts": ["server", "s", "localhost", "127.0.0.1"],  # the in-process clients' base URLs
    }
    if double is not None:
        values.update(
            openai_api_key=TEST_OPENAI_KEY,
            openai_base_url=f"{double.url}/v1",
            google_api_key=TEST_GOOGLE_KEY,
            google_gemini_base_url=double.url,
            gemini_api_version="v1beta",
        )
    values.update(overrides)
    return Settings(_env_file=None, **values)


AppFactory = Callable[..., FastAPI]


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data or event != "message":
            events.append((event, "\n".join(data)))
    return events


async def calls_for(app: FastAPI, request_id: str) -> list[dict]:
    """The call records of one request, in rung order."""
    records = await app.state.monitoring.store.find(request_id=request_id)
    return sorted((r.as_dict() for r in records), key=lambda r: (r["rung"], r["started_at"]))


def policy_kit(settings: Settings, *, seed: int = 7, now: datetime = EVENING) -> PolicyParts:
    """The policy of ``settings`` with a seeded exploration and a clock stopped at ``now``."""
    return PolicyParts.from_settings(
        settings, configured_alternatives(settings), rng=random.Random(seed), clock=lambda: now
    )
