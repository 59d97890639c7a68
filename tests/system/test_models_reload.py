"""``python server.py`` reloads its models file on SIGHUP without a restart: the new deployments
serve the next requests, and a broken file is refused with the running configuration kept (and
alerted). Without the handler SIGHUP would end the process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.helpers.processes import eventually, server_popen
from tests.helpers.provider_double import ProviderDouble

QUESTION = {"input": {"question": "What is a reload?"}}


def deployment(double: ProviderDouble, model: str) -> str:
    return (
        '[ladders]\nfallback = ["openai", "local"]\n\n'
        f'[[deployments]]\nalternative = "openai"\nname = "a"\nkind = "openai"\nbase_url = "{double.url}/v1"\n'
        f'api_key_env = "TEST_RELOAD_KEY"\nmodel = "{model}"\n'
    )


def served_by(url: str) -> str:
    response = httpx.post(f"{url}/fallback/invoke", json=QUESTION, timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["x-served-by"]


def test_sighup_reloads_the_models_file_and_a_broken_one_is_refused_with_the_server_serving_on(
    tmp_path: Path, double: ProviderDouble
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(deployment(double, "gpt-4o-mini"), encoding="utf-8")
    settings = {"LLM_SERVER_MODELS_FILE": str(path), "TEST_RELOAD_KEY": "sk-test-reload-0123456789abcdef"}
    with server_popen(tmp_path / "server", settings) as (process, url):
        assert served_by(url) == "gpt-4o-mini"

        path.write_text(deployment(double, "gpt-4o"), encoding="utf-8")
        os.kill(process.pid, signal.SIGHUP)
        eventually(lambda: served_by(url) == "gpt-4o", "the reloaded deployment answers")

        path.write_text(
            "[[deployments]]\nalternative = 'openai'\nkind = 'openai'\nmodel = 'm'\nweight = -1\n", encoding="utf-8"
        )
        os.kill(process.pid, signal.SIGHUP)

        def refused() -> bool:
            firing = httpx.get(f"{url}/monitoring/alerts").json()["firing"]
            return any(alert["rule"] == "models_file" for alert in firing)

        eventually(refused, "the refused reload's alert")
        assert process.poll() is None, "SIGHUP does not end the server"
        assert served_by(url) == "gpt-4o", "the running configuration is kept"
        assert "does not validate" in (tmp_path / "server" / "server.log").read_text()
