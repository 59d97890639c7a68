"""Hardening II (issue 14): what a caller with a valid key could do to everyone else, each through
the HTTP API with keys of different tiers: take over another's run id, steer the shared router,
open a shared breaker with config in the URL, break monitoring reads with odd metadata, reach an
open server under another site's name, reuse another's request id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from langchain_openai import ChatOpenAI
from langserve.lzstring import LZString

from errors import Cause, classify
from tests.helpers.apps import AppFactory, policy_kit, settings_for
from tests.helpers.keys import as_tier, keyed_settings
from tests.helpers.provider_double import ProviderDouble
from tests.helpers.records import call

QUESTION = {"question": "What is the capital of Australia?"}


@pytest.fixture
async def keyed_app(double: ProviderDouble, make_app: AppFactory, tmp_path: Path) -> FastAPI:
    settings = keyed_settings(double, tmp_path, routing_exploration=0.0)
    return make_app(settings, policy=policy_kit(settings))


@pytest.fixture
async def keyed(keyed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=keyed_app), base_url="http://server") as http:
        yield http


def in_url(config: dict[str, object]) -> str:
    """The ``/c/{config_hash}/`` segment LangServe's playground builds: LZ-string-compressed JSON."""
    return LZString.compressToEncodedURIComponent(json.dumps(config))


# Item 2: batch run ids are the server's.


async def test_a_batch_cannot_take_over_another_users_run_id(keyed: httpx.AsyncClient, keyed_app: FastAPI) -> None:
    hers = await keyed.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
    her_run = hers.json()["metadata"]["run_id"]
    forged = {"inputs": [QUESTION, QUESTION], "config": {"metadata": {"root_run_id": her_run}}}
    his = await keyed.post("/chat/batch", json=forged, headers=as_tier("enterprise"))

    his_feedback = await keyed.post("/feedback", json={"run_id": her_run, "score": 0}, headers=as_tier("enterprise"))
    her_feedback = await keyed.post("/feedback", json={"run_id": her_run, "score": 1}, headers=as_tier("pro"))

    assert his.status_code == 200
    assert his_feedback.status_code == 404
    assert her_feedback.status_code == 200
    under_her_run = await keyed_app.state.monitoring.store.find(run_id=her_run)
    assert {record.metadata["user_id"] for record in under_her_run} == {"bob"}


async def test_each_batch_item_gets_the_run_id_it_is_returned_with(
    keyed: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    response = await keyed.post("/chat/batch", json={"inputs": [QUESTION, QUESTION]}, headers=as_tier("pro"))
    run_ids = response.json()["metadata"]["run_ids"]

    assert len(set(run_ids)) == 2
    for run_id in run_ids:
        (record,) = await keyed_app.state.monitoring.store.find(run_id=run_id)
        assert record.root_run_id == run_id
        verdict = await keyed.post("/feedback", json={"run_id": run_id, "score": 1}, headers=as_tier("pro"))
        assert verdict.status_code == 200, "a batch answer can be rated, by its owner"


# Item 3: nobody steers the shared router.


async def test_routing_metadata_sent_by_a_client_is_not_what_a_call_counts_for(
    keyed: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    forged = {"input": QUESTION, "config": {"metadata": {"routing": {"question_type": "code"}}}}
    response = await keyed.post("/fallback/invoke", json=forged, headers=as_tier("pro"))

    (record,) = await keyed_app.state.monitoring.store.find(request_id=response.headers["x-request-id"])
    assert "routing" not in record.metadata, "the server decided no routing on /fallback"
    assert record.metadata["client"] == {"routing": {"question_type": "code"}}
    arms = keyed_app.state.policy.router.bandit.snapshot()
    assert "code" not in arms, "the call taught the router nothing about code questions"


async def test_one_keys_bad_verdicts_move_only_its_own_routing(keyed: httpx.AsyncClient) -> None:
    async def ask_auto(tier: str, question: str) -> httpx.Response:
        payload = {"input": {"question": question}, "config": {"configurable": {"llm_model": "auto"}}}
        response = await keyed.post("/chat/invoke", json=payload, headers=as_tier(tier))
        assert response.status_code == 200, response.text
        return response

    first = await ask_auto("pro", "What is the capital of Kenya?")
    assert first.headers["x-served-by"] == "gpt-4o-mini", "factual questions start on the preferred model"
    verdict = {"run_id": first.json()["metadata"]["run_id"], "score": 0.0}  # bob: "useless"
    assert (await keyed.post("/feedback", json=verdict, headers=as_tier("pro"))).status_code == 200

    bobs = await ask_auto("pro", "What is the capital of Peru?")
    carols = await ask_auto("enterprise", "What is the capital of Chile?")

    assert bobs.headers["x-served-by"] != "gpt-4o-mini", "bob's own verdicts steer his own routing"
    assert carols.headers["x-served-by"] == "gpt-4o-mini", "carol is still routed on everyone's measurements"


# Item 4: config in the URL is checked like the body's; the caller's failures are the caller's.


@pytest.mark.parametrize(
    ("config", "status"),
    [
        ({"configurable": {"llm_temperature": float("nan")}}, 422),
        ({"configurable": {"llm_temperature": 7}}, 422),
        ({"configurable": {"temp": 0.5}}, 422),
        ({"configurable": {"llm_model": "gpt4"}}, 403),
    ],
)
async def test_config_in_the_url_is_checked_like_the_body(
    shared_keyed: httpx.AsyncClient, double: ProviderDouble, config: dict[str, object], status: int
) -> None:
    response = await shared_keyed.post(
        f"/chat/c/{in_url(config)}/invoke", json={"input": QUESTION}, headers=as_tier("free")
    )

    assert response.status_code == status, response.text
    assert not double.served, "nothing reached a provider"


async def test_a_free_key_cannot_open_the_shared_breaker_with_nan_in_the_url(keyed: httpx.AsyncClient) -> None:
    nan = in_url({"configurable": {"llm_temperature": float("nan")}})
    for _ in range(8):
        response = await keyed.post(f"/fallback/c/{nan}/invoke", json={"input": QUESTION}, headers=as_tier("free"))
        assert response.status_code == 422
    assert "nan" in response.json()["message"].lower()

    breakers = (await keyed.get("/monitoring/breakers", headers=as_tier("admin"))).json()["breakers"]
    alerts = (await keyed.get("/monitoring/alerts", headers=as_tier("admin"))).json()
    assert all(breaker["state"] == "closed" for breaker in breakers), breakers
    assert alerts["firing"] == [] and alerts["history"] == []
    served = await keyed.post("/fallback/invoke", json={"input": QUESTION}, headers=as_tier("enterprise"))
    assert served.headers["x-served-by"] == "gpt-4o-mini"


async def test_an_sdk_refusing_to_send_the_callers_parameters_is_the_callers_fault(double: ProviderDouble) -> None:
    model = ChatOpenAI(
        model="gpt-4o-mini", api_key="sk-test", base_url=f"{double.url}/v1", temperature=float("nan"), max_retries=0
    )
    with pytest.raises(ValueError) as refused:
        await model.ainvoke("hi")

    assert classify(refused.value) is Cause.BAD_REQUEST
    assert not double.served


# Items 5, 8 and 13: client metadata is bounded, shallow and Unicode.

ENDPOINTS = ["invoke", "stream", "stream_log", "stream_events"]


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"deeper": value}
    return value


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, "batch"])
@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"metadata": nested(260)}, "nested deeper than 8"),
        ({"metadata": {"note": "\udc80"}}, "lone surrogate"),
        ({"tags": ["ok", "\udc80"]}, "lone surrogate"),
        ({"metadata": {"blob": "x" * 20_000}}, "LLM_SERVER_MAX_CLIENT_METADATA_BYTES"),
    ],
)
async def test_metadata_too_deep_too_large_or_not_unicode_is_422_on_every_endpoint(
    shared_keyed: httpx.AsyncClient, double: ProviderDouble, endpoint: str, config: dict[str, object], says: str
) -> None:
    body = {"inputs": [QUESTION], "config": config} if endpoint == "batch" else {"input": QUESTION, "config": config}
    # json.dumps writes the lone surrogate as the escape a client sends; httpx's json= would refuse it.
    content = json.dumps(body)
    response = await shared_keyed.post(
        f"/chat/{endpoint}", content=content, headers={**as_tier("pro"), "Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert says in response.json()["message"]
    assert not double.served


async def test_monitoring_reads_stay_up_after_odd_metadata_was_sent(keyed: httpx.AsyncClient) -> None:
    deep_but_allowed = {"metadata": nested(8), "tags": ["ünïcode ✓"]}
    answered = await keyed.post(
        "/chat/invoke", json={"input": QUESTION, "config": deep_but_allowed}, headers=as_tier("pro")
    )
    for config in ({"metadata": nested(300)}, {"metadata": {"k\udc80": 1}}):
        content = json.dumps({"input": QUESTION, "config": config})
        headers = {**as_tier("pro"), "Content-Type": "application/json"}
        refused = await keyed.post("/chat/invoke", content=content, headers=headers)
        assert refused.status_code == 422 and refused.json()["message"]

    calls = await keyed.get("/monitoring/calls", headers=as_tier("pro"))
    dashboard = await keyed.get("/dashboard/data", headers=as_tier("admin"))

    assert answered.status_code == 200
    assert calls.status_code == 200 and calls.json()["calls"][0]["metadata"]["client"] == nested(8)
    assert dashboard.status_code == 200


# Item 10: an open server answers only to localhost names.


async def test_an_open_server_answers_only_to_localhost_names(double: ProviderDouble, make_app: AppFactory) -> None:
    app = make_app(settings_for(double, allowed_hosts=[]))  # the default: no hosts configured
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        local = await http.get("/health")
        named = await http.get("/health", headers={"Host": "localhost:8000"})
        ipv6 = await http.get("/health", headers={"Host": "[::1]:8000"})
        rebound = await http.post("/chat/invoke", json={"input": QUESTION}, headers={"Host": "evil.example:8000"})

    assert local.status_code == named.status_code == ipv6.status_code == 200
    assert rebound.status_code == 400
    assert "LLM_SERVER_ALLOWED_HOSTS" in rebound.json()["message"]
    assert not double.served


async def test_a_keyed_server_answers_any_host_unless_hosts_are_configured(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    anyhost = make_app(keyed_settings(double, tmp_path, allowed_hosts=[]))
    listed = make_app(keyed_settings(double, tmp_path, allowed_hosts=["*.example.com"]))

    async def health(app: FastAPI, host: str) -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}") as http:
            return (await http.get("/health")).status_code

    assert await health(anyhost, "llm.internal") == 200
    assert await health(listed, "api.example.com") == 200
    assert await health(listed, "llm.internal") == 400


# Item 14: request ids are the server's once there are keys.


async def test_a_key_cannot_file_its_requests_under_another_keys_request_id(
    keyed: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    headers = {"X-Request-Id": "order-4711"}
    hers = await keyed.post("/chat/invoke", json={"input": QUESTION}, headers={**as_tier("pro"), **headers})
    his = await keyed.post("/chat/invoke", json={"input": QUESTION}, headers={**as_tier("enterprise"), **headers})

    assert hers.headers["x-client-request-id"] == his.headers["x-client-request-id"] == "order-4711"
    assert len({hers.headers["x-request-id"], his.headers["x-request-id"], "order-4711"}) == 3
    (record,) = await keyed_app.state.monitoring.store.find(request_id=hers.headers["x-request-id"])
    assert record.metadata["user_id"] == "bob"


async def test_a_record_stored_before_metadata_was_checked_does_not_break_the_reads(
    client: httpx.AsyncClient, remote_app: FastAPI
) -> None:
    # As an earlier version stored it, into the real SQLite file: a lone surrogate in a tag and metadata.
    remote_app.state.monitoring.store.add(
        call(started_at=datetime.now(UTC), tags=["\udc80"], metadata={"client": {"note": "\udc80"}})
    )
    await remote_app.state.monitoring.store.flush()

    calls = await client.get("/monitoring/calls")
    dashboard = await client.get("/dashboard/data")

    assert calls.status_code == 200 and calls.json()["calls"][0]["tags"] == ["\udc80"]
    assert dashboard.status_code == 200
