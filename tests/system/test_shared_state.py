"""Replicas sharing one Redis behave as one service: two ``python server.py`` processes and a real
``redis-server``. A breaker opened through one is open in the other, spend and rate limits add
up across both, an alert is delivered once; and a server whose Redis dies keeps serving on its
own state, alerts, shares again when Redis returns, and loses none of what it recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from policy.tiers import default_tiers
from shared_state.spend import KEY as SPEND_KEY
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.keys import KEYS, as_tier, keys_file
from tests.helpers.processes import RedisServer, eventually, server_process
from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.receivers import HttpReceiver
from wiring.shared_state import SharedState

CALL_COST = Decimal("0.0000138")  # one gpt-4o-mini answer to a short question, from the double
QUESTION = {"input": {"question": "What is DNS?"}}


@pytest.fixture
def replicas(
    redis_url: str, provider_double: ProviderDouble, receiver: HttpReceiver, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    provider_double.reset()
    tiers = default_tiers()
    tiers["pro"] = tiers["pro"].model_copy(update={"requests_per_minute": 4})
    settings = {
        "REDIS_URL": redis_url,
        "OPENAI_API_KEY": "sk-test-double-0123456789abcdef",
        "OPENAI_BASE_URL": f"{provider_double.url}/v1",
        "LLM_SERVER_API_KEYS_FILE": str(keys_file(tmp_path)),
        "LLM_SERVER_TIERS": json.dumps({name: tier.model_dump() for name, tier in tiers.items()}),
        "LLM_SERVER_BREAKER_CONSECUTIVE_FAILURES": "2",
        "LLM_SERVER_BREAKER_OPEN_S": "600",
        "LLM_SERVER_RETRY_ATTEMPTS": "1",
        "LLM_SERVER_ALERT_COST_THRESHOLD_USD": str(CALL_COST * Decimal("1.5")),
        "LLM_SERVER_ALERT_WEBHOOK_URL": f"{receiver.url}/hook",
        "LLM_SERVER_ALERT_COOLDOWN_S": "0",
        "LLM_SERVER_ROUTING_EXPLORATION": "0",
        "LLM_SERVER_POLICY_PROMPT_STYLES": "00-24=default",  # CALL_COST is its prompt's; nights are concise
    }
    with server_process(tmp_path / "a", settings) as a, server_process(tmp_path / "b", settings) as b:
        yield a, b


def post(url: str, tier: str, payload: dict[str, object] = QUESTION) -> httpx.Response:
    return httpx.post(f"{url}/chat/invoke", json=payload, headers=as_tier(tier), timeout=60)


def breaker_deliveries(url: str) -> list[dict[str, object]]:
    history = httpx.get(f"{url}/monitoring/alerts", headers=as_tier("admin")).json()["history"]
    return [d for x in history if x["rule"] == "circuit_breaker" and x["state"] == "firing" for d in x["deliveries"]]


def firing_webhooks(receiver: HttpReceiver, rule: str) -> list[dict[str, object]]:
    alerts = [r.body for r in receiver.on("/hook")]
    return [a for a in alerts if a["rule"] == rule and a["state"] == "firing"]


def test_a_breaker_opened_through_one_replica_is_open_in_the_other(
    replicas: tuple[str, str], provider_double: ProviderDouble, receiver: HttpReceiver
) -> None:
    a, b = replicas
    provider_double.set("gpt-4o-mini", Behaviour(fail_status=503))

    through_a = [post(a, "enterprise") for _ in range(2)]
    through_b = post(b, "enterprise")
    breakers_b = httpx.get(f"{b}/monitoring/breakers", headers=as_tier("admin")).json()["breakers"]

    assert [r.headers["x-served-by"] for r in [*through_a, through_b]] == ["SmolLM2-135M-Instruct"] * 3
    assert len(provider_double.requests_for("gpt-4o-mini")) == 2, "B skipped the endpoint without calling it"
    assert breakers_b[0]["endpoint"] == "openai:gpt-4o-mini" and breakers_b[0]["state"] == "open"
    assert "opened by another replica" in breakers_b[0]["reason"]
    # Both replicas raised the alert; once both have dealt with it, one delivered it.
    eventually(lambda: all(breaker_deliveries(url) for url in (a, b)), "both replicas handled the alert")
    webhook = [d for url in (a, b) for d in breaker_deliveries(url) if d["sink"] == "webhook"]
    outcomes = sorted(d["error"] or "sent" for d in webhook)
    assert outcomes == ["delivered by another replica", "sent"]
    assert len(firing_webhooks(receiver, "circuit_breaker")) == 1


def test_rate_limits_count_requests_through_both_replicas(replicas: tuple[str, str]) -> None:
    a, b = replicas

    statuses = [post(url, "pro").status_code for url in (a, b, a, b)]
    over = [post(a, "pro"), post(b, "pro")]

    assert statuses == [200, 200, 200, 200]
    assert [r.status_code for r in over] == [429, 429], "4 per minute for the key, whichever replica counts"
    assert over[0].json()["limit"] == "requests_per_minute"


def test_spend_adds_up_across_replicas_and_its_alert_fires_once(
    replicas: tuple[str, str], redis_url: str, receiver: HttpReceiver
) -> None:
    a, b = replicas

    first = post(a, "enterprise")
    alerts_a = httpx.get(f"{a}/monitoring/alerts", headers=as_tier("admin")).json()
    second = post(b, "enterprise")
    alerts_b = httpx.get(f"{b}/monitoring/alerts", headers=as_tier("admin")).json()

    assert first.headers["x-served-by"] == second.headers["x-served-by"] == "gpt-4o-mini"
    assert "cost_threshold" not in {x["rule"] for x in alerts_a["firing"]}, "one call is under the threshold"
    assert "cost_threshold" in {x["rule"] for x in alerts_b["firing"]}, "B counted A's spend too"
    assert Decimal(redis.Redis.from_url(redis_url).get(SPEND_KEY).decode()) == 2 * CALL_COST
    eventually(lambda: len(firing_webhooks(receiver, "cost_threshold")) == 1, "the cost alert was delivered")


def test_feedback_reaches_the_router_through_either_replica(replicas: tuple[str, str]) -> None:
    a, b = replicas
    answer = post(a, "pro")  # the pro tier's default model, openai; the question is classified as factual
    verdict = {"run_id": answer.json()["metadata"]["run_id"], "score": 0.0}

    on_b = httpx.post(f"{b}/feedback", json=verdict, headers=as_tier("pro"))
    again_on_a = httpx.post(f"{a}/feedback", json=verdict, headers=as_tier("pro"))

    assert on_b.status_code == 200 and on_b.json()["learned"]["alternative"] == "openai"
    assert again_on_a.status_code == 409, "one verdict per answer, whichever replica hears it"
    # A answered, B heard the verdict: both replicas' bandits hold the call (everyone's) and the
    # verdict (bob's own arm: feedback steers only its tenant's routing).
    for url in (a, b):
        eventually(lambda url=url: openai_arm(url, "factual").get("observations") == 1, f"{url} shares the call")
        eventually(lambda url=url: openai_arm(url, "factual@bob").get("observations") == 1, f"{url} shares the verdict")
        assert openai_arm(url, "factual@bob")["estimate"] < 0.6, "the bad verdict pulled bob's estimate down"
        assert openai_arm(url, "factual")["estimate"] > 0.8, "and nobody else's"


def openai_arm(url: str, kind: str) -> dict[str, object]:
    arms = httpx.get(f"{url}/monitoring/routing", headers=as_tier("admin")).json()["arms"].get(kind, [])
    return next((arm for arm in arms if arm["model"] == "openai"), {})


async def test_without_redis_the_server_keeps_serving_alerts_and_shares_again_losing_nothing(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    own_redis = RedisServer()
    own_redis.start()
    settings = settings_for(double, redis_url=own_redis.url, redis_retry_s=0.05, api_keys_file=keys_file(tmp_path))
    shared = SharedState.from_settings(settings)
    assert shared.link is not None
    app = make_app(settings, shared=shared)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as http:
            before = await http.post("/chat/invoke", json=QUESTION, headers=as_tier("pro"))
            assert before.status_code == 200
            await app.state.monitoring.spend.drain()
            own_redis.kill()

            during = [await http.post("/chat/invoke", json=QUESTION, headers=as_tier("pro")) for _ in range(2)]
            await app.state.monitoring.spend.drain()
            firing = (await http.get("/monitoring/alerts", headers=as_tier("admin"))).json()["firing"]

            own_redis.start()
            await asyncio.wait_for(shared.link.recovered.wait(), timeout=10)
            after = await http.post("/chat/invoke", json=QUESTION, headers=as_tier("pro"))
            await app.state.monitoring.spend.drain()
            alerts = (await http.get("/monitoring/alerts", headers=as_tier("admin"))).json()
            spent = Decimal(redis.Redis.from_url(own_redis.url).get(SPEND_KEY).decode())
            calls = (await http.get("/monitoring/calls", headers=as_tier("pro"))).json()["calls"]
            stats = (await http.get("/monitoring/stats", headers=as_tier("admin"))).json()["totals"]
    finally:
        await shared.close()
        own_redis.kill()

    assert [r.status_code for r in during] == [200, 200], "served on local state (limits, breakers, spend)"
    outage = [x for x in firing if x["rule"] == "shared_state"]
    assert len(outage) == 1 and "unreachable" in outage[0]["message"] and KEYS["pro"] not in outage[0]["message"]
    assert after.status_code == 200
    assert "shared_state" not in {x["rule"] for x in alerts["firing"]}
    assert ("shared_state", "resolved") in {(x["rule"], x["state"]) for x in alerts["history"]}
    # Nothing recorded before, during or after the outage is lost: every call's record, and the
    # shared spend, although the restarted Redis came back empty (no persistence).
    served = {r.headers["x-request-id"] for r in (before, *during, after)}
    assert {c["request_id"] for c in calls} == served and len(calls) == 4
    recorded = sum(Decimal(c["cost_usd"]) for c in calls)
    assert recorded > 0 and Decimal(stats["cost_usd"]) == recorded
    assert spent == recorded
