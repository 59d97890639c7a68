"""Admin keys through the HTTP API: the operations routes that show every user's records are for
admin keys only, ``/monitoring/calls`` shows any other key its own user's records, fault control
needs an admin, and ``/monitoring/calls`` comes in pages bounded in records and in bytes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.monitoring import MAX_CALLS_PAGE_BYTES
from errors import ConfigurationError
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.keys import KEYS, as_tier, keys_file
from tests.helpers.provider_double import ProviderDouble
from tests.helpers.records import call

# Records made here directly start an hour ago: before this test's requests, inside the retention.
EARLIER = datetime.now(UTC) - timedelta(hours=1)
ADMIN_ROUTES = [
    ("GET", "/monitoring/stats"),
    ("GET", "/monitoring/alerts"),
    ("GET", "/monitoring/breakers"),
    ("GET", "/monitoring/routing"),
    ("GET", "/metrics"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/data"),
    ("GET", "/faults"),
    ("PUT", "/faults"),
]


@pytest.fixture
def app(double: ProviderDouble, make_app: AppFactory, tmp_path: Path) -> FastAPI:
    """Keys of three tiers and an admin's, with fault control on (so only the role decides)."""
    return make_app(settings_for(double, api_keys_file=keys_file(tmp_path), fault_control=True))


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as client:
        yield client


def ask(question: str = "What is DNS?", **config: Any) -> dict[str, Any]:
    return {"input": {"question": question}, "config": {"configurable": {"llm_model": "openai"}, **config}}


async def all_pages(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of /monitoring/calls, following ``next`` until it is null."""
    pages, cursor = [], None
    for _ in range(100):
        response = await http.get("/monitoring/calls", params={**params, "cursor": cursor or ""}, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json()["calls"])
        cursor = response.json()["next"]
        if cursor is None:
            return pages
    raise AssertionError("next never became null")


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
async def test_admin_routes_are_403_for_other_keys_and_200_for_an_admin(
    shared_keyed: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {} if method == "PUT" else None
    refused = {
        tier: await shared_keyed.request(method, path, json=body, headers=as_tier(tier)) for tier in ("free", "pro")
    }
    admitted = await shared_keyed.request(method, path, json=body, headers=as_tier("admin"))

    for tier, response in refused.items():
        assert response.status_code == 403, (tier, response.text)
        assert response.json()["error"] == "admin_only"
        assert "admin = true" in response.json()["message"] and "--admin" in response.json()["message"]
        assert path in response.json()["message"]
    assert admitted.status_code == 200, admitted.text
    for open_to_any_key in ("/dashboard/assets/dashboard.js", "/openapi.json", "/monitoring/calls"):
        assert (await shared_keyed.get(open_to_any_key, headers=as_tier("free"))).status_code == 200, open_to_any_key


async def test_other_keys_see_only_their_own_users_calls_and_an_admin_sees_all(
    http: httpx.AsyncClient, app: FastAPI
) -> None:
    for tier in ("free", "pro", "pro"):
        assert (await http.post("/chat/invoke", json=ask(), headers=as_tier(tier))).status_code == 200
    # A record from when the server ran open: its user_id was only the client's label, no key vouched for it.
    app.state.monitoring.store.add(call(run_id="open-era", started_at=EARLIER, metadata={"user_id": "alice"}))

    async def users(tier: str, **params: str) -> list[str]:
        response = await http.get("/monitoring/calls", params=params, headers=as_tier(tier))
        assert response.status_code == 200, response.text
        return [c["metadata"].get("user_id") for c in response.json()["calls"]]

    assert await users("free") == ["alice"]
    assert await users("pro") == ["bob", "bob"]
    assert await users("free", user_id="bob") == [], "a filter narrows a key's own records, never widens them"
    assert sorted(await users("admin")) == ["alice", "alice", "bob", "bob"]
    assert await users("admin", user_id="bob") == ["bob", "bob"]


async def test_putting_faults_with_fault_control_on_needs_an_admin_key(http: httpx.AsyncClient, app: FastAPI) -> None:
    fault = {"openai": {"kind": "status", "status": 503}}

    refused = await http.put("/faults", json=fault, headers=as_tier("enterprise"))
    unchanged = dict(app.state.resilience.faults.specs)
    accepted = await http.put("/faults", json=fault, headers=as_tier("admin"))

    assert refused.status_code == 403 and refused.json()["error"] == "admin_only"
    assert unchanged == {}, "the refused request changed nothing"
    assert accepted.status_code == 200 and accepted.json()["faults"]["openai"]["status"] == 503


@pytest.mark.parametrize("value", ['"yes"', "1", '"true"'])
def test_a_keys_file_whose_admin_is_not_a_boolean_stops_the_start(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path, value: str
) -> None:
    keys = tmp_path / "api_keys.toml"
    keys.write_text(f'[[keys]]\nuser = "dana"\ntier = "pro"\nkey = "{KEYS["admin"]}"\nadmin = {value}\n')

    with pytest.raises(ConfigurationError, match=r"`admin`.*not a boolean") as refused:
        make_app(settings_for(double, api_keys_file=keys))
    assert str(keys) in str(refused.value) and "dana" in str(refused.value)


async def test_calls_come_in_pages_that_follow_next_until_null(http: httpx.AsyncClient, app: FastAPI) -> None:
    for n in range(5):
        tags = ["paged"] if n != 2 else []
        response = await http.post("/chat/invoke", json=ask(f"Question {n}?", tags=tags), headers=as_tier("admin"))
        assert response.status_code == 200
    # Two at the same instant: the run id orders them, so neither is lost between pages.
    for run_id in ("same-a", "same-b"):
        app.state.monitoring.store.add(call(run_id=run_id, started_at=EARLIER, metadata={"user_id": "x"}))

    everything = (await http.get("/monitoring/calls", headers=as_tier("admin"))).json()
    pages = await all_pages(http, as_tier("admin"), limit=2)
    tagged = await all_pages(http, as_tier("admin"), limit=2, tag="paged")

    assert everything["next"] is None and len(everything["calls"]) == 7
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [c["run_id"] for page in pages for c in page] == [c["run_id"] for c in everything["calls"]]
    assert [c["run_id"] for c in everything["calls"]][-2:] == ["same-b", "same-a"], "newest first, then by run id"
    assert [len(page) for page in tagged] == [2, 2], "filters hold on every page"
    assert all(c["tags"] == ["paged"] for page in tagged for c in page)


async def test_a_page_of_calls_stops_at_its_byte_budget(http: httpx.AsyncClient, app: FastAPI) -> None:
    big = "x" * 950_000  # the metadata: four of these made one answer of 126.5 MB
    for n in range(12):
        metadata = {"user_id": "dana", "note": big}
        app.state.monitoring.store.add(
            call(run_id=f"big-{n:02}", started_at=EARLIER + timedelta(seconds=n), metadata=metadata)
        )

    first = await http.get("/monitoring/calls", params={"limit": 1000}, headers=as_tier("admin"))
    pages = await all_pages(http, as_tier("admin"), limit=1000)

    assert first.status_code == 200
    assert len(first.content) <= MAX_CALLS_PAGE_BYTES + 1024, "the records within the budget, plus the envelope"
    assert first.json()["next"] is not None and 1 <= len(first.json()["calls"]) < 12
    assert [c["run_id"] for page in pages for c in page] == [f"big-{n:02}" for n in reversed(range(12))]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        base64.urlsafe_b64encode(b'{"started_ts": 1}').decode(),
        base64.urlsafe_b64encode(b'[NaN, "run"]').decode(),
        base64.urlsafe_b64encode(b"[1.5, 7]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[" + b"9" * 320 + b', "run"]').decode(),  # an int no float holds
    ],
)
async def test_a_bad_cursor_is_a_422_naming_it(shared_keyed: httpx.AsyncClient, cursor: str) -> None:
    response = await shared_keyed.get("/monitoring/calls", params={"cursor": cursor}, headers=as_tier("free"))

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request" and response.json()["parameter"] == "cursor"
    assert response.json()["message"].startswith("cursor:") and "next" in response.json()["message"]
