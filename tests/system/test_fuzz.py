"""Schemathesis over the server's own OpenAPI schema: every operation, with valid and invalid
input, answers without a 5xx, and every error body is JSON with a ``message``.

Two servers: an open one gets schemathesis's coverage phase (boundary values, wrong types,
missing fields, unexpected methods) and its random fuzzing; one with API keys gets a lighter
fuzzing run whose requests carry a key of each tier in turn, an unknown key or none.

Each app runs on its own event loop (an anyio blocking portal) with its real lifespan, started
once per server: schemathesis's own ASGI client would start and stop the lifespan around every
test, closing the model each time. Remote models answer from the provider double; the local model
writes one token, so a generated ``llm_model: local`` (or a question the router sends there)
stays fast. A 503 is not allowed either: the double is healthy, so no ladder may run out of rungs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import example, given, settings
from hypothesis import strategies as st
from langchain_openai.chat_models._client_utils import _cached_async_httpx_client
from schemathesis import Case, CheckContext, CheckFunction, Response
from schemathesis.config import SchemathesisConfig

from policy.tiers import ALTERNATIVES, Tier, default_tiers
from server import create_app
from tests.helpers.apps import settings_for
from tests.helpers.provider_double import ProviderDouble

SEED = 20240801
# The schema does not depend on where the providers are; the apps under test are checked against it.
SPEC = create_app(settings_for(None)).openapi()
OPEN = schemathesis.openapi.from_dict(
    SPEC,
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "max-examples": 10, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            # stream_log and stream_events read input and config as invoke does (which gets the
            # coverage phase); coverage there would mostly enumerate LangServe's event filters, at
            # ~200 chain runs per route. They keep the random fuzzing.
            "operations": [
                {"include-path-regex": "/(stream_log|stream_events)$", "phases": {"coverage": {"enabled": False}}}
            ],
        }
    ),
)
KEYED = schemathesis.openapi.from_dict(
    SPEC,
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "max-examples": 5, "deterministic": True, "database": "none"},
            "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        }
    ),
)

KEYS = {"all": "lsk_fuzz-all-models-0123456789", "free": "lsk_fuzz-free-tier-0123456789"}
# In turn rather than drawn by Hypothesis: schemathesis drops its coverage phase for tests that
# draw anything of their own, and the order of the examples is fixed, so runs repeat.
PRESENTED = (KEYS["all"], KEYS["free"], KEYS["free"], "lsk_unknown-0123456789", None)
REQUEST_TIMEOUT_S = 30


@dataclass
class Server:
    app: FastAPI
    portal: BlockingPortal
    http: httpx.AsyncClient
    keys: Iterator[str | None] = field(default_factory=lambda: itertools.repeat(None))

    def send(self, case: Case) -> httpx.Response:
        key = next(self.keys)
        kwargs = case.as_transport_kwargs(base_url="http://server", headers={"X-API-Key": key} if key else None)
        return self.portal.call(self._send, kwargs)

    async def _send(self, kwargs: dict[str, Any]) -> httpx.Response:
        with anyio.fail_after(REQUEST_TIMEOUT_S):
            return await self.http.request(**_as_httpx(kwargs))


def _as_httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``requests`` keyword arguments schemathesis builds, as httpx takes them."""
    out = {name: kwargs[name] for name in ("method", "url", "headers", "params") if kwargs.get(name) is not None}
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, str | bytes):
        out["content"] = data
    elif data is not None:
        out["data"] = data
    if kwargs.get("files"):
        out["files"] = kwargs["files"]
    if kwargs.get("cookies"):
        cookie = "; ".join(f"{name}={value}" for name, value in kwargs["cookies"].items())
        out["headers"] = {**out.get("headers", {}), "Cookie": cookie}
    return out


@contextmanager
def _serving(double: ProviderDouble, **overrides: Any) -> Iterator[Server]:
    double.reset()
    # Its own local model (the lifespan closes it); fault control on, so PUT /faults is fuzzed too.
    # Small prompt and batch limits keep local answers quick and reach the 413s more often.
    settings = settings_for(
        double, fault_control=True, local_max_tokens=1, max_prompt_chars=400, max_batch_inputs=4, **overrides
    )
    app = create_app(settings)
    assert app.openapi() == SPEC
    with start_blocking_portal() as portal:
        # raise_app_exceptions=False: a crash reaches the checks as the 500 a client would get.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        http = httpx.AsyncClient(transport=transport, base_url="http://server")
        try:
            with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
                yield Server(app, portal, http)
            portal.call(http.aclose)
        finally:
            # langchain-openai shares one async HTTP client per base URL across the process; the
            # one made here holds connections of this portal's loop, which is about to close, and
            # the next test on the session's loop would get "Event loop is closed" from it.
            _cached_async_httpx_client.cache_clear()


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, provider_double: ProviderDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``open``, or ``keyed``: two keys, one with every model and one of the free tier's models
    (local by default, no gpt4 or gemini: 403s), with limits so high that 429s do not crowd out
    the chains."""
    if request.param == "open":
        with _serving(provider_double) as server:
            yield server
        return
    many = {"requests_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000}
    tiers = {
        "all": Tier(models=list(ALTERNATIVES), default_model="openai", **many),
        "free": Tier(
            models=default_tiers()["free"].models, default_model=default_tiers()["free"].default_model, **many
        ),
    }
    keys = _keys_file(tmp_path_factory.mktemp("keys"))
    with _serving(provider_double, api_keys_file=keys, tiers=tiers, open_tier="all") as server:
        server.keys = itertools.cycle(PRESENTED)
        yield server


def _keys_file(folder: Path) -> Path:
    path = folder / "api_keys.toml"
    path.write_text(
        f'[[keys]]\nuser = "fuzz-all"\ntier = "all"\nkey = "{KEYS["all"]}"\n\n'
        f'[[keys]]\nuser = "fuzz-free"\ntier = "free"\nkey = "{KEYS["free"]}"\n'
    )
    return path


def assert_error_says_what(status: int, content: bytes) -> None:
    """The contract: every error says, in JSON, what is wrong (and what to do about it)."""
    if status < 400:
        return
    try:
        body = json.loads(content)
    except ValueError:
        raise AssertionError(f"{status} body is not JSON: {content[:200]!r}") from None
    # The OpenAI-compatible door (/v1) answers in OpenAI's envelope: the message is under "error".
    said = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else body
    message = said.get("message") if isinstance(said, dict) else None
    assert isinstance(message, str) and message.strip(), f"{status} without a message: {body!r}"


def error_body_has_message(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    assert_error_says_what(response.status_code, response.content)
    return None


CHECKS: list[CheckFunction] = [schemathesis.checks.not_a_server_error, error_body_has_message]


def _check(server: Server, case: Case) -> None:
    response = server.send(case)
    try:
        case.validate_response(response, checks=CHECKS)
    finally:
        if case.method == "PUT" and case.path == "/faults":
            server.app.state.resilience.faults.replace({})  # the next example meets healthy providers


# The server as a pytest parameter also gives each operation its own test id, e.g.
# test_open_server[POST /chat/invoke][open] (schemathesis 4.32 names them only through a parameter on pytest 9.2).
@OPEN.parametrize()
@pytest.mark.parametrize("server", ["open"], indirect=True)
def test_open_server(case: Case, server: Server) -> None:
    _check(server, case)


@KEYED.parametrize()
@pytest.mark.parametrize("server", ["keyed"], indirect=True)
def test_keyed_server(case: Case, server: Server) -> None:
    _check(server, case)


# The playground's files are not in the schema (LangServe leaves them out): fuzz their paths here.
@pytest.mark.parametrize("server", ["open"], indirect=True)
@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(name=st.text(max_size=300))
@example(name="assets/").via("a directory")
@example(name="index.html/x").via("a path under a file")
@example(name="a" * 300).via("a name too long")
@example(name="\x00").via("a NUL byte")
def test_playground_paths(server: Server, name: str) -> None:
    response = server.portal.call(server.http.get, "/chat/playground/" + quote(name, safe="/"))

    assert response.status_code < 500, response.text
    assert_error_says_what(response.status_code, response.content)
