"""API keys, tiers and limits through the HTTP API: 401, 403, 413 and 429, and who a call
record says called."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from policy.keys import hash_key
from policy.tiers import default_tiers
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.keys import KEYS, as_tier, keyed_settings, limited_tiers
from tests.helpers.provider_double import Behaviour, ProviderDouble

QUESTION = {"question": "What is LangServe?"}


@pytest.fixture
async def keyed(double: ProviderDouble, make_app: AppFactory, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(keyed_settings(double, tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        yield http


def ask(model: str | None = None) -> dict[str, object]:
    return {"input": QUESTION, "config": {"configurable": {"llm_model": model}} if model else {}}


async def test_three_keys_of_three_tiers_get_three_model_sets(keyed: httpx.AsyncClient) -> None:
    expected = {tier: set(spec.models) for tier, spec in default_tiers().items()}
    assert len({frozenset(models) for models in expected.values()}) == 3

    for tier in ("free", "pro", "enterprise"):
        allowed = set()
        for model in ("openai", "gpt4", "gemini"):
            response = await keyed.post("/chat/invoke", json=ask(model), headers=as_tier(tier))
            assert response.status_code in (200, 403), response.text
            if response.status_code == 200:
                allowed.add(model)
            else:
                body = response.json()
                assert body["error"] == "model_not_allowed"
                assert body["allowed"] == [*default_tiers()[tier].models, "auto"]
                assert model in body["message"] and tier in body["message"]
        assert allowed == expected[tier] - {"local"}, tier


async def test_each_tier_gets_its_own_default_model(keyed: httpx.AsyncClient, double: ProviderDouble) -> None:
    free = await keyed.post("/chat/invoke", json=ask(), headers=as_tier("free"))
    pro = await keyed.post("/chat/invoke", json=ask(), headers=as_tier("pro"))

    assert free.status_code == pro.status_code == 200
    assert free.headers["x-served-by"] == "SmolLM2-135M-Instruct"
    assert pro.headers["x-served-by"] == "gpt-4o-mini"
    assert [s.model for s in double.served] == ["gpt-4o-mini"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/chat/invoke"),
        ("POST", "/adaptive/stream"),
        ("GET", "/chat/playground/"),
        ("GET", "/chat/input_schema"),
        ("GET", "/monitoring/stats"),
        ("GET", "/monitoring/routing"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("POST", "/feedback"),
        ("GET", "/dashboard"),
        ("GET", "/dashboard/data"),
        ("GET", "/dashboard/assets/dashboard.js"),
        ("PUT", "/faults"),
    ],
)
async def test_requests_without_a_key_get_401_everywhere(
    shared_keyed: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await shared_keyed.request(method, path, json=ask())

    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert "X-API-Key" in response.json()["message"]
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["x-request-id"]


async def test_health_needs_no_key(shared_keyed: httpx.AsyncClient) -> None:
    assert (await shared_keyed.get("/health")).status_code == 200


async def test_an_unknown_key_gets_401_saying_it_is_not_valid(shared_keyed: httpx.AsyncClient) -> None:
    response = await shared_keyed.post("/chat/invoke", json=ask(), headers={"X-API-Key": "lsk_guessed-0123456789"})

    assert response.status_code == 401
    assert "not valid" in response.json()["message"]
    assert "lsk_guessed" not in response.text


async def test_bearer_and_basic_credentials_work_like_the_header(shared_keyed: httpx.AsyncClient) -> None:
    basic = base64.b64encode(f"anyone:{KEYS['pro']}".encode()).decode()
    for headers in ({"Authorization": f"Bearer {KEYS['pro']}"}, {"Authorization": f"Basic {basic}"}):
        response = await shared_keyed.get("/monitoring/calls", headers=headers)
        assert response.status_code == 200, headers


async def test_a_spoofed_user_id_and_tier_are_replaced_by_the_keys_owner(
    keyed: httpx.AsyncClient, double: ProviderDouble
) -> None:
    payload = {
        "input": QUESTION,
        "config": {"metadata": {"user_id": "mallory", "tier": "enterprise", "api_key_id": "x"}},
    }

    response = await keyed.post("/chat/invoke", json=payload, headers=as_tier("pro"))
    assert response.status_code == 200
    calls = (await keyed.get("/monitoring/calls", headers=as_tier("pro"))).json()["calls"]

    assert len(calls) == 1
    assert calls[0]["metadata"]["user_id"] == "bob"
    assert calls[0]["metadata"]["tier"] == "pro"
    assert calls[0]["metadata"]["api_key_id"] == hash_key(KEYS["pro"])[:12]
    assert calls[0]["metadata"]["client_user_id"] == "mallory", "kept apart, for backends that pass their users' ids"
    spoofed = await keyed.get("/monitoring/calls", params={"user_id": "mallory"}, headers=as_tier("pro"))
    assert spoofed.json()["calls"] == []


async def test_a_model_above_the_tier_is_403_on_streams_and_batches_too(
    keyed: httpx.AsyncClient, double: ProviderDouble
) -> None:
    stream = await keyed.post("/chat/stream", json=ask("gpt4"), headers=as_tier("pro"))
    batch = await keyed.post(
        "/chat/batch",
        json={"inputs": [QUESTION, QUESTION], "config": [{}, {"configurable": {"llm_model": "gpt4"}}]},
        headers=as_tier("pro"),
    )

    assert stream.status_code == batch.status_code == 403
    assert double.served == []


async def test_fallback_ladders_skip_the_models_above_the_tier(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(keyed_settings(double, tmp_path))
    double.set("gpt-4o-mini", Behaviour(fail_status=503))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        response = await http.post("/fallback/invoke", json={"input": QUESTION}, headers=as_tier("free"))

    assert response.status_code == 200
    assert response.headers["x-served-by"] == "SmolLM2-135M-Instruct"
    assert [s.model for s in double.served] == ["gpt-4o-mini"], "gemini and gpt-4o are above the free tier"


async def test_requests_over_the_per_minute_limit_get_429_with_retry_after(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(keyed_settings(double, tmp_path, tiers=limited_tiers(requests_per_minute=2)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        statuses = [(await http.post("/chat/invoke", json=ask(), headers=as_tier("pro"))).status_code for _ in range(3)]
        refused = await http.post("/chat/invoke", json=ask(), headers=as_tier("pro"))
        other_key = await http.post("/chat/invoke", json=ask(), headers=as_tier("enterprise"))
        reading = await http.get("/monitoring/calls", headers=as_tier("pro"))

    assert statuses == [200, 200, 429]
    assert refused.status_code == 429
    # A sliding window: the last minute's count weighs on this one until it has gone by (up to two minutes).
    assert 1 <= int(refused.headers["retry-after"]) <= 2 * 60
    assert refused.json()["limit"] == "requests_per_minute"
    assert "2 requests per minute" in refused.json()["message"]
    assert other_key.status_code == 200, "limits are per key"
    assert reading.status_code == 200, "reading monitoring does not count against the chains' limit"
    assert len(double.served) == 3


async def test_tokens_over_the_per_minute_limit_get_429(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app: FastAPI = make_app(keyed_settings(double, tmp_path, tiers=limited_tiers(tokens_per_minute=20)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        first = await http.post("/chat/invoke", json=ask(), headers=as_tier("pro"))
        await app.state.policy.meter.drain()
        second = await http.post("/chat/invoke", json=ask(), headers=as_tier("pro"))

    assert first.status_code == 200
    assert double.served[0].input_tokens + double.served[0].output_tokens > 20
    assert second.status_code == 429
    assert second.json()["limit"] == "tokens_per_minute"
    assert int(second.headers["retry-after"]) >= 1


async def test_a_body_over_the_limit_is_413_with_or_without_a_length(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, max_body_bytes=2048))
    big = b'{"input": {"question": "' + b"x" * 4000 + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        declared = await http.post("/chat/invoke", content=big, headers={"content-type": "application/json"})
        chunked = await http.post("/chat/invoke", content=chunks(), headers={"content-type": "application/json"})

    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["limit_bytes"] == 2048
        assert "LLM_SERVER_MAX_BODY_BYTES" in response.json()["message"]
    assert double.served == []


async def test_a_question_or_batch_over_its_limit_is_413(double: ProviderDouble, make_app: AppFactory) -> None:
    app = make_app(settings_for(double, max_prompt_chars=100, max_batch_inputs=2))
    long_question = {"input": {"question": "why " * 30}}
    big_batch = {"inputs": [QUESTION] * 3}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        long_invoke = await http.post("/chat/invoke", json=long_question)
        long_stream = await http.post("/fallback/stream", json=long_question)
        batch = await http.post("/chat/batch", json=big_batch)

    assert long_invoke.status_code == long_stream.status_code == 413
    assert "120 characters" in long_invoke.json()["message"]
    assert batch.status_code == 413 and batch.json()["limit_inputs"] == 2
    assert double.served == []


async def test_without_keys_the_server_runs_open_as_the_open_tier(
    client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    response = await client.post("/chat/invoke", json=ask("gpt4"))
    calls = (await client.get("/monitoring/calls")).json()["calls"]

    assert response.status_code == 200
    assert calls[0]["metadata"]["user_id"] == "anonymous"
    assert calls[0]["metadata"]["tier"] == "enterprise"


async def test_feedback_rates_only_the_callers_own_answers_and_only_once(keyed: httpx.AsyncClient) -> None:
    answer = await keyed.post("/chat/invoke", json=ask(), headers=as_tier("pro"))
    verdict = {"run_id": answer.json()["metadata"]["run_id"], "score": 0.0}

    someone_else = await keyed.post("/feedback", json=verdict, headers=as_tier("enterprise"))
    own = await keyed.post("/feedback", json=verdict, headers=as_tier("pro"))
    again = await keyed.post("/feedback", json=verdict, headers=as_tier("pro"))

    assert someone_else.status_code == 404
    assert own.status_code == 200 and own.json()["learned"]["alternative"] == "openai"
    assert again.status_code == 409
