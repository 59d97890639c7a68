"""The real start command, RemoteRunnable and the client examples against a live server.

The server runs as ``python server.py`` in a subprocess, with no keys: the embedded model answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from langserve import RemoteRunnable

from tests.helpers.processes import ROOT, server_process


def _serve(tmp_path_factory: pytest.TempPathFactory, **settings: str) -> Iterator[str]:
    with server_process(tmp_path_factory.mktemp("server"), settings) as url:
        yield url


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory)


API_KEY = "lsk_live-test-key-0123456789"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    keys = tmp_path_factory.mktemp("keys") / "api_keys.toml"
    keys.write_text(f'[[keys]]\nuser = "dana"\ntier = "free"\nkey = "{API_KEY}"\n')
    yield from _serve(tmp_path_factory, LLM_SERVER_API_KEYS_FILE=str(keys))


CONFIG = {
    "configurable": {"llm_model": "local", "prompt_style": "concise"},
    "tags": ["remote-runnable"],
    "metadata": {"user_id": "remote-user", "session_id": "remote-session"},
}


def test_remote_runnable_invoke_stream_batch(live_server: str) -> None:
    chat = RemoteRunnable(f"{live_server}/chat/", timeout=60.0)
    try:
        answer = chat.invoke({"question": "Name a colour."}, config=CONFIG)
        chunks = list(chat.stream({"question": "Name a fruit."}, config=CONFIG))
        batch = chat.batch([{"question": "Hi"}, {"question": "Hello"}], config=CONFIG)
    finally:
        chat.sync_client.close()

    assert isinstance(answer, str) and answer.strip()
    assert len(chunks) > 1 and all(isinstance(c, str) for c in chunks)
    assert len(batch) == 2 and all(isinstance(b, str) and b.strip() for b in batch)
    calls = httpx.get(f"{live_server}/monitoring/calls", params={"limit": 10}).json()["calls"]
    mine = [c for c in calls if c["metadata"].get("user_id") == "remote-user"]
    assert len(mine) == 4
    assert all("remote-runnable" in c["tags"] and c["model"] == "SmolLM2-135M-Instruct" for c in mine)


async def test_remote_runnable_async_invoke(live_server: str) -> None:
    fallback = RemoteRunnable(f"{live_server}/fallback/", timeout=60.0)
    try:
        answer = await fallback.ainvoke({"question": "Say hello."})
        chunks = [c async for c in fallback.astream({"question": "Say hi."})]
    finally:
        await fallback.async_client.aclose()
        fallback.sync_client.close()

    assert answer.strip()
    assert "".join(chunks).strip()


def test_remote_runnable_sees_a_422_for_an_unknown_configurable(live_server: str) -> None:
    chat = RemoteRunnable(f"{live_server}/chat/", timeout=60.0)
    try:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            chat.invoke({"question": "hi"}, config={"configurable": {"temperature": 0.1}})
    finally:
        chat.sync_client.close()

    assert caught.value.response.status_code == 422


def test_playground_is_served(live_server: str) -> None:
    response = httpx.get(f"{live_server}/chat/playground/", follow_redirects=True, timeout=10)

    assert response.status_code == 200
    assert "<html" in response.text.lower()


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "client_examples/remote_runnable_sync.py"],
        [sys.executable, "client_examples/remote_runnable_async.py"],
        ["bash", "client_examples/rest.sh"],
        [sys.executable, "client_examples/openai_sdk.py"],
        [sys.executable, "client_examples/langchain_chat_openai.py"],
    ],
    ids=["sync", "async", "curl", "openai-sdk", "chat-openai"],
)
def test_client_example_runs(live_server: str, command: list[str]) -> None:
    done = subprocess.run([*command, live_server], cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.count(":") >= 3


def test_remote_runnable_sends_its_key_and_is_refused_without_one(keyed_server: str) -> None:
    keyed = RemoteRunnable(f"{keyed_server}/adaptive/", timeout=60.0, headers={"X-API-Key": API_KEY})
    anonymous = RemoteRunnable(f"{keyed_server}/adaptive/", timeout=60.0)
    try:
        answer = keyed.invoke({"question": "Name a colour."})
        with pytest.raises(httpx.HTTPStatusError) as caught:
            anonymous.invoke({"question": "Name a colour."})
    finally:
        keyed.sync_client.close()
        anonymous.sync_client.close()

    assert answer.strip()
    assert caught.value.response.status_code == 401


def test_a_browser_gets_into_the_playground_with_the_key_as_its_password(keyed_server: str) -> None:
    refused = httpx.get(f"{keyed_server}/chat/playground/", follow_redirects=True, timeout=10)
    admitted = httpx.get(
        f"{keyed_server}/chat/playground/", follow_redirects=True, timeout=10, auth=("anyone", API_KEY)
    )

    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert admitted.status_code == 200 and "<html" in admitted.text.lower()


def run_example_with_key(example: str, server: str) -> subprocess.CompletedProcess[str]:
    """``client_examples/<example>`` against ``server``, with the key in ``LLM_SERVER_API_KEY``."""
    env = {**os.environ, "LLM_SERVER_API_KEY": API_KEY}
    command = [sys.executable, f"client_examples/{example}", server]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_the_adaptive_example_runs_with_a_key(keyed_server: str) -> None:
    done = run_example_with_key("adaptive.py", keyed_server)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("answered by: SmolLM2-135M-Instruct") == 2, done.stdout
    assert "small talk" in done.stdout or "smalltalk" in done.stdout


def test_the_openai_sdk_example_runs_with_a_key(keyed_server: str) -> None:
    done = run_example_with_key("openai_sdk.py", keyed_server)  # the key goes as Authorization: Bearer

    assert done.returncode == 0, done.stdout + done.stderr
    assert "models: openai, local, auto, fallback, quality" in done.stdout  # the free tier's
    assert done.stdout.count("model: SmolLM2-135M-Instruct") == 3, done.stdout
