"""One budget, two replicas, one Redis: ``python server.py`` twice, 16 clients of the OpenAI SDK
hammering both at once. What the provider double billed (its usage at gpt-4o-mini's price, the
provider's own account of the spend) never passes the limit while Redis answers; with Redis killed
mid-run, each replica spends against its own view, so together they pass it by at most what was
left when Redis went away (the bound the README states); when Redis returns, what both spent
meanwhile is counted and the budget refuses through either."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
import redis

from policy.tiers import default_tiers
from tests.helpers.keys import KEYS, as_tier, keys_file
from tests.helpers.processes import ROOT, RedisServer, eventually, server_process
from tests.helpers.provider_double import Behaviour, ProviderDouble

LIMIT = Decimal("0.02")  # two cents
ANSWER = " ".join(["word"] * 100)  # 0.00006 USD of output at gpt-4o-mini's price
PRICE_IN, PRICE_OUT = Decimal("0.15") / 10**6, Decimal("0.60") / 10**6  # gpt-4o-mini, per token
CLIENTS = 16
MAX_OUTPUT = 120
# The most one call may cost, as held: "Say hi" (6 bytes, one message: 14 tokens) and its output.
CALL_MOST = 14 * PRICE_IN + MAX_OUTPUT * PRICE_OUT


def shared_total(server: RedisServer) -> Decimal:
    """The spend Redis holds for the key's line (every bucket, floors included)."""
    client = redis.Redis.from_url(server.url, decode_responses=True)
    keys = [k for k in client.keys("llm-server:budget:keys:*") if ":spent:" in k or ":floor:" in k]
    total = sum(int(client.get(key) or 0) for key in keys)
    client.close()
    return Decimal(total) / 10**12


def billed(double: ProviderDouble) -> Decimal:
    """What the provider would bill for every answer it gave."""
    return sum(
        (s.input_tokens * PRICE_IN + s.output_tokens * PRICE_OUT for s in double.served if s.status == 200),
        Decimal(0),
    )


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def replicas(own_redis: RedisServer, provider_double: ProviderDouble, tmp_path: Path) -> Iterator[tuple[str, str]]:
    provider_double.reset()
    provider_double.set("gpt-4o-mini", Behaviour(text=ANSWER))
    room = {"requests_per_minute": 100_000, "tokens_per_minute": 100_000_000}
    tiers = {name: tier.model_copy(update=room) for name, tier in default_tiers().items()}
    settings = {
        "REDIS_URL": own_redis.url,
        "OPENAI_API_KEY": "sk-test-double-0123456789abcdef",
        "OPENAI_BASE_URL": f"{provider_double.url}/v1",
        "LLM_SERVER_API_KEYS_FILE": str(keys_file(tmp_path)),
        "LLM_SERVER_TIERS": json.dumps({name: tier.model_dump() for name, tier in tiers.items()}),
        "LLM_SERVER_BUDGETS": json.dumps([{"name": "keys", "scope": "key", "limit_usd": str(LIMIT)}]),
        "LLM_SERVER_BUDGET_MAX_OUTPUT_TOKENS": str(MAX_OUTPUT),
        "LLM_SERVER_RETRY_ATTEMPTS": "1",
        "LLM_SERVER_REDIS_RETRY_S": "0.2",
    }
    with server_process(tmp_path / "a", settings) as a, server_process(tmp_path / "b", settings) as b:
        yield a, b


def hammer(urls: tuple[str, str], *, after_each: Callable[[], None] = lambda: None) -> list[int]:
    """``CLIENTS`` threads, each alternating between the replicas until the budget refuses it;
    each thread's count of answers."""
    answered = [0] * CLIENTS

    def client(n: int) -> None:
        sdks = [openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["pro"], max_retries=0, timeout=30) for url in urls]
        for turn in range(10_000):
            try:
                sdks[(n + turn) % 2].chat.completions.create(
                    model="openai", messages=[{"role": "user", "content": "Say hi"}]
                )
            except openai.RateLimitError as refused:
                assert refused.code == "budget_exhausted", refused
                return
            answered[n] += 1
            after_each()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answered


def refused_by_both(urls: tuple[str, str]) -> bool:
    for url in urls:
        answer = httpx.post(
            f"{url}/v1/chat/completions", headers=as_tier("pro"), timeout=30,
            json={"model": "openai", "messages": [{"role": "user", "content": "Say hi"}]},
        )  # fmt: skip
        if answer.status_code != 429:
            return False
    return True


def test_two_replicas_hammering_one_budget_never_spend_past_its_limit(
    replicas: tuple[str, str], provider_double: ProviderDouble
) -> None:
    answered = hammer(replicas)
    bill = billed(provider_double)
    standing = httpx.get(f"{replicas[1]}/budgets", headers=as_tier("pro")).json()["budgets"][0]

    print(f"\nbudget {LIMIT} USD, two replicas, Redis up: billed {bill} in {sum(answered)} answers")
    assert sum(answered) > 20, "the budget held many calls"
    assert bill <= LIMIT, f"overshoot {bill - LIMIT}"
    assert Decimal(standing["spent_usd"]) == bill, "the shared total is the provider's bill, to the pico-dollar"
    assert Decimal(standing["held_usd"]) == 0
    assert refused_by_both(replicas)


def test_with_redis_killed_mid_run_the_overshoot_stays_within_the_stated_bound(
    replicas: tuple[str, str], provider_double: ProviderDouble, own_redis: RedisServer
) -> None:
    at_kill: list[Decimal] = []
    lock = threading.Lock()

    def kill_at_half() -> None:
        with lock:
            if not at_kill and billed(provider_double) >= LIMIT / 2:
                at_kill.append(shared_total(own_redis))
                own_redis.kill()

    hammer(replicas, after_each=kill_at_half)
    bill = billed(provider_double)
    # Each replica spends against its last read of the total: what was left then, for each, and
    # the calls each read missed (one per client at most).
    bound = LIMIT - at_kill[0] + CLIENTS * CALL_MOST
    own_redis.start()  # empty: it kept nothing

    def spent_as_told(url: str) -> Decimal:
        return Decimal(httpx.get(f"{url}/budgets", headers=as_tier("pro")).json()["budgets"][0]["spent_usd"])

    def sharing_again(url: str) -> bool:
        firing = httpx.get(f"{url}/monitoring/alerts", headers=as_tier("admin")).json()["firing"]
        return not any(alert["rule"] == "shared_state" for alert in firing)

    def counted_again() -> bool:  # a request through each replica syncs it, once it sees Redis back
        if not refused_by_both(replicas):
            return False
        told = {spent_as_told(url) for url in replicas}
        return told == {shared_total(own_redis)}

    eventually(lambda: all(sharing_again(url) for url in replicas), "both replicas see Redis back")
    eventually(counted_again, "both replicas read one total from Redis again")
    shared = shared_total(own_redis)

    print(f"\nbudget {LIMIT} USD, Redis killed at {at_kill[0]}: billed {bill}, overshoot {bill - LIMIT}, bound {bound}")
    assert bill > LIMIT, "each replica spent the rest of its own view: the outage's cost, which the README states"
    assert bill <= LIMIT + bound, f"overshoot {bill - LIMIT} over the bound {bound}"
    assert shared >= LIMIT, "Redis got back what was spent before and during the outage"
    # A settlement Redis ran as it died, whose answer was lost, is counted here too: towards refusing early.
    assert shared <= bill + CLIENTS * CALL_MOST, "at most the settlements in flight at the kill counted twice"


def test_workers_without_redis_refuse_to_start_with_budgets(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "LLM_SERVER_BUDGETS": json.dumps([{"name": "b", "scope": "user", "limit_usd": "1"}]),
    }
    started = subprocess.run(
        [sys.executable, "server.py", "--workers", "2", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert started.returncode == 2
    assert "2 workers share budgets only through Redis: set REDIS_URL" in started.stderr
