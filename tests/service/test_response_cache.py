"""The response cache through the HTTP API, with the provider double counting every call it gets:
a repeated question costs nothing the second time (no provider call, a ``cached`` record with
what it saved, the metrics); each part of the request that shapes the answer is a miss; answers
expire; each key has its own cache unless the operator shares one; ``Cache-Control`` opts in,
bypasses and refuses storing; streams replay a cached answer as chunks on both doors; it is off
unless a tier, a key or a request switches it on; and a hit does not count against token limits.
The cache runs on a clock of the test's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openai import AsyncOpenAI

from policy.keys import hash_key
from tests.helpers.apps import AppFactory, calls_for, settings_for, sse_events
from tests.helpers.clock import FakeClock
from tests.helpers.keys import limited_tiers, roomy_tiers, write_keys
from tests.helpers.limits import START, app_on
from tests.helpers.provider_double import Behaviour, ProviderDouble
from vocabulary.run_metadata import RESPONSE_CACHE

NOW = 1_800_000_000.0
QUESTION = {"question": "What is DNS?"}
MINI = "gpt-4o-mini"
KEYS = {
    "alice": "lsk_cache-alice-0123456789",  # free, cache = true
    "bob": "lsk_cache-bob-0123456789ab",  # pro
    "erin": "lsk_cache-erin-0123456789a",  # pro
    "carol": "lsk_cache-carol-012345678",  # enterprise, cache = false
    "frank": "lsk_cache-frank-012345678",  # enterprise
    "dana": "lsk_cache-dana-0123456789",  # admin
}


def keys_file(folder: Path) -> Path:
    return write_keys(
        folder,
        {"user": "alice", "tier": "free", "key": KEYS["alice"], "cache": True},
        {"user": "bob", "tier": "pro", "key": KEYS["bob"]},
        {"user": "erin", "tier": "pro", "sha256": hash_key(KEYS["erin"])},
        {"user": "carol", "tier": "enterprise", "key": KEYS["carol"], "cache": False},
        {"user": "frank", "tier": "enterprise", "key": KEYS["frank"]},
        {"user": "dana", "tier": "free", "key": KEYS["dana"], "admin": True},
    )


def key(user: str, **headers: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[user], **headers}


@pytest.fixture
async def make_cached(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> AsyncIterator[Callable[..., FastAPI]]:
    """Apps with the cache's file in ``tmp_path`` and its clock at ``NOW`` (moved by the test
    through ``clock_of``); ``keyed=True`` serves the keys above. Caches are closed at the end."""
    apps: list[FastAPI] = []

    def make(*, keyed: bool = False, **settings: Any) -> FastAPI:
        values: dict[str, Any] = {
            "cache_db_path": tmp_path / f"cache-{len(apps)}.sqlite3",
            "policy_prompt_styles": "00-24=default",  # the prompt style must not change with the hour
            "tiers": roomy_tiers(),
        }
        if keyed:
            values["api_keys_file"] = keys_file(tmp_path)
        values.update(settings)
        app = make_app(settings_for(double, **values))
        app.state.caching.answers.clock = FakeClock(NOW)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.state.caching.close()


def clock_of(app: FastAPI) -> FakeClock:
    clock: FakeClock = app.state.caching.answers.clock
    return clock


def serving(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server")


async def invoke(
    app: FastAPI, http: httpx.AsyncClient, question: dict[str, Any] = QUESTION, *, route: str = "chat", **body: Any
) -> httpx.Response:
    """One /invoke, and the cache's write of its answer done before the next request."""
    headers = body.pop("headers", None)
    answer = await http.post(f"/{route}/invoke", json={"input": question, **body}, headers=headers)
    assert answer.status_code == 200, answer.text
    await app.state.caching.answers.drain()
    return answer


def sdk(http: httpx.AsyncClient, api_key: str = "none") -> AsyncOpenAI:
    return AsyncOpenAI(base_url="http://server/v1", api_key=api_key, http_client=http, max_retries=0)


async def door(app: FastAPI, http: httpx.AsyncClient, **request: Any) -> tuple[str, str | None]:
    """One /v1 chat completion through the SDK: its text and X-Cache."""
    request.setdefault("model", "openai")
    request.setdefault("messages", [{"role": "user", "content": "What is DNS?"}])
    raw = await sdk(http).chat.completions.with_raw_response.create(**request)
    await app.state.caching.answers.drain()
    return raw.parse().choices[0].message.content or "", raw.headers.get("x-cache")


def metric(text: str, name: str) -> float:
    """The value of one sample line of /metrics (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


# -- the second time costs nothing ---------------------------------------------------------------


async def test_a_repeated_question_costs_nothing_the_second_time(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"])  # the open server's tier
    async with serving(app) as http:
        first = await invoke(app, http)
        second = await invoke(app, http)
        listed = (await http.get("/monitoring/calls", params={"outcome": "cached"})).json()
        stats = (await http.get("/monitoring/stats")).json()["totals"]
        metrics = (await http.get("/metrics")).text

    assert [s.model for s in double.served] == [MINI], "one provider call for two answers"
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.json()["output"] == first.json()["output"]
    assert second.headers["x-served-by"] == MINI and second.headers["x-attempts"] == "0"
    usage = second.json()["metadata"]["usage"]
    assert (usage["calls"], usage["total_tokens"], usage["cost_usd"]) == (0, 0, "0")
    (made,) = await calls_for(app, first.headers["x-request-id"])
    (served,) = await calls_for(app, second.headers["x-request-id"])
    assert made["outcome"] == "ok" and float(made["cost_usd"]) > 0
    assert (served["outcome"], served["provider"], served["model"], served["alternative"]) == (
        "cached", "cache", MINI, "openai",
    )  # fmt: skip
    assert (served["input_tokens"], served["output_tokens"], served["cost_usd"]) == (0, 0, "0")
    assert served["root_run_id"] == second.json()["metadata"]["run_id"]
    assert served["metadata"]["cache"]["saved_usd"] == made["cost_usd"], "it saved what the answer cost"
    assert served["metadata"]["tier"] == "enterprise" and served["metadata"][RESPONSE_CACHE]["scope"] == "open"
    assert [r["run_id"] for r in listed["calls"]] == [served["run_id"]], "outcome=cached finds the hit"
    assert (stats["calls"], stats["cache_hits"], stats["cache_saved_usd"]) == (1, 1, made["cost_usd"])
    assert metric(metrics, 'llm_cache_lookups_total{result="hit",route="chat"}') == 1
    assert metric(metrics, 'llm_cache_lookups_total{result="miss",route="chat"}') == 1
    assert metric(metrics, 'llm_cache_saved_usd_total{route="chat"}') == pytest.approx(float(made["cost_usd"]))
    assert metric(metrics, 'llm_calls_total{door="langserve",model="gpt-4o-mini",outcome="ok",provider="openai"}') == 1


# -- each part of the key ------------------------------------------------------------------------


async def test_each_part_of_a_langserve_request_that_shapes_the_answer_is_a_miss(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"])
    variants: list[tuple[str, dict[str, Any]]] = [
        ("question", {"question": {"question": "What is TCP?"}}),
        ("language", {"question": {**QUESTION, "language": "ko"}}),
        ("prompt style", {"config": {"configurable": {"prompt_style": "detailed"}}}),
        ("temperature", {"config": {"configurable": {"llm_temperature": 0.1}}}),
        ("alternative", {"config": {"configurable": {"llm_model": "gemini"}}}),
        ("route", {"route": "fallback"}),
        ("quality route", {"route": "quality"}),  # its rungs answer with text, kept as text
    ]
    async with serving(app) as http:
        base = await invoke(app, http)
        seen: dict[str, list[str]] = {name: [] for name, _ in variants}
        for name, change in variants:
            for _ in range(2):
                options = dict(change)
                answer = await invoke(app, http, options.pop("question", QUESTION), **options)
                seen[name].append(answer.headers["x-cache"])
        again = await invoke(app, http)

    assert base.headers["x-cache"] == "miss"
    assert seen == {name: ["miss", "hit"] for name, _ in variants}, "each variant is its own answer, kept"
    assert again.headers["x-cache"] == "hit"
    assert len(double.served) == 1 + len(variants)


async def test_each_generation_option_of_the_openai_door_is_a_miss(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"])
    system = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is DNS?"}]
    variants: dict[str, dict[str, Any]] = {
        "temperature": {"temperature": 0.2},
        "max_tokens": {"max_tokens": 50},
        "top_p": {"top_p": 0.5},
        "seed": {"seed": 3},
        "stop": {"stop": ["\n\n"]},
        "messages": {"messages": system},
        "model": {"model": "fallback"},
    }
    async with serving(app) as http:
        base = await door(app, http)
        langserve = await invoke(app, http, {"question": "What is DNS?"}, route="fallback")
        seen = {name: [(await door(app, http, **change))[1] for _ in range(2)] for name, change in variants.items()}
        again = await door(app, http)

    assert base[1] == "miss" and again == (base[0], "hit")
    assert langserve.headers["x-cache"] == "miss", "another door's answer is not this one's"
    assert seen == {name: ["miss", "hit"] for name in variants}
    assert len(double.served) == 2 + len(variants)


async def test_a_batch_answers_each_input_it_has_seen_from_the_cache(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"])
    other = {"question": "What is TCP?"}
    async with serving(app) as http:
        single = await invoke(app, http)
        batch = await http.post("/chat/batch", json={"inputs": [QUESTION, other]})
        await app.state.caching.answers.drain()
        again = await http.post("/chat/batch", json={"inputs": [other, QUESTION]})

    assert batch.status_code == 200 and again.status_code == 200
    assert sorted(batch.headers["x-cache"].split(",")) == ["hit", "miss"]
    assert again.headers["x-cache"] == "hit,hit"
    assert batch.json()["output"][0] == single.json()["output"] == again.json()["output"][1]
    assert len(double.served) == 2


# -- time to live --------------------------------------------------------------------------------


async def test_an_answer_expires_after_the_ttl_and_a_request_may_ask_for_a_younger_one(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"], cache_ttl_s=60)
    clock = clock_of(app)
    results = []
    async with serving(app) as http:
        results.append((await invoke(app, http)).headers["x-cache"])
        clock.now += 59
        results.append((await invoke(app, http)).headers["x-cache"])
        clock.now += 2
        results.append((await invoke(app, http)).headers["x-cache"])
        results.append((await invoke(app, http)).headers["x-cache"])
        clock.now += 30
        young = await invoke(app, http, headers={"Cache-Control": "max-age=10"})
        results.append(young.headers["x-cache"])
        results.append((await invoke(app, http, headers={"Cache-Control": "max-age=10"})).headers["x-cache"])

    assert results == ["miss", "hit", "miss", "hit", "miss", "hit"]
    assert len(double.served) == 3


# -- scope ---------------------------------------------------------------------------------------


async def test_each_key_has_its_own_cache(make_cached: Callable[..., FastAPI], double: ProviderDouble) -> None:
    app = make_cached(keyed=True, cache_tiers=["pro"])
    async with serving(app) as http:
        seen = [
            (user, (await invoke(app, http, headers=key(user))).headers["x-cache"])
            for user in ("bob", "bob", "erin", "erin")
        ]
        (bobs,) = await calls_for(app, (await invoke(app, http, headers=key("bob"))).headers["x-request-id"])

    assert seen == [("bob", "miss"), ("bob", "hit"), ("erin", "miss"), ("erin", "hit")]
    assert len(double.served) == 2
    assert bobs["metadata"][RESPONSE_CACHE]["scope"] == hash_key(KEYS["bob"])[:12]


async def test_a_shared_cache_answers_every_key_of_a_tier(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(keyed=True, cache_tiers=["pro", "enterprise"], cache_shared=True)
    async with serving(app) as http:
        seen = [
            (user, (await invoke(app, http, headers=key(user))).headers["x-cache"])
            for user in ("bob", "erin", "frank", "frank")
        ]

    assert seen == [("bob", "miss"), ("erin", "hit"), ("frank", "miss"), ("frank", "hit")], (
        "another tier's answer is not handed over: it may come from a model the tier may not use"
    )
    assert len(double.served) == 2


# -- Cache-Control -------------------------------------------------------------------------------


async def test_no_cache_gets_a_fresh_answer_which_is_kept_and_no_store_one_which_is_not(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"])
    answers = []
    async with serving(app) as http:
        for text, header in [
            ("The first answer.", None),
            ("The second answer.", "no-cache"),
            ("The third answer.", None),
            ("The fourth answer.", "no-store"),
            ("The fifth answer.", None),
        ]:
            double.set(MINI, Behaviour(text=text))
            headers = {"Cache-Control": header} if header else None
            answer = await invoke(app, http, headers=headers)
            answers.append((answer.json()["output"], answer.headers["x-cache"]))

    assert answers == [
        ("The first answer.", "miss"),
        ("The second answer.", "bypass"),
        ("The second answer.", "hit"),
        ("The fourth answer.", "bypass"),
        ("The second answer.", "hit"),
    ]
    assert len(double.served) == 3


# -- streams -------------------------------------------------------------------------------------


async def langserve_stream(app: FastAPI, http: httpx.AsyncClient) -> tuple[list[str], list[dict[str, Any]]]:
    """The text chunks and metadata events of one /chat/stream."""
    answer = await http.post("/chat/stream", json={"input": QUESTION})
    assert answer.status_code == 200, answer.text
    await app.state.caching.answers.drain()
    events = sse_events(answer.text)
    chunks = [json.loads(data) for event, data in events if event == "data"]
    told = [json.loads(data) for event, data in events if event == "metadata"]
    return chunks, told


async def test_a_cached_answer_streams_back_as_chunks_on_the_langserve_route(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"])
    async with serving(app) as http:
        fresh, told_fresh = await langserve_stream(app, http)
        replayed, told = await langserve_stream(app, http)
        invoked = await invoke(app, http)

    assert len(double.served) == 1
    assert "".join(replayed) == "".join(fresh) == invoked.json()["output"]
    assert len(replayed) == len("".join(fresh).split()), "one chunk a word"
    served = [t["served_by"] for t in told if "served_by" in t]
    assert served and served[-1]["model"] == MINI and served[-1]["attempts"] == 0
    assert [t["cache"] for t in (*told_fresh, *told) if "cache" in t] == ["miss", "hit"], "in the last event"
    usage = [t["usage"] for t in told if "usage" in t]
    assert usage == [{**usage[0], "calls": 0, "total_tokens": 0, "cost_usd": "0"}]
    assert invoked.headers["x-cache"] == "hit", "a streamed answer is kept for invokes too"


async def test_a_cached_answer_streams_back_through_the_openai_sdk(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_tiers=["enterprise"])
    messages = [{"role": "user", "content": "What is DNS?"}]
    streamed: list[tuple[list[str], str | None, Any, str | None]] = []
    async with serving(app) as http:
        for _ in range(2):
            raw = await sdk(http).chat.completions.with_raw_response.create(
                model="openai", messages=messages, stream=True, stream_options={"include_usage": True}
            )
            pieces, finish, usage = [], None, None
            async for chunk in raw.parse():
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    pieces.append(choice.delta.content or "")
                    finish = choice.finish_reason or finish
            await app.state.caching.answers.drain()
            streamed.append((pieces, finish, usage, raw.headers.get("x-cache")))
        whole = await door(app, http, messages=messages)

    (fresh, _, fresh_usage, fresh_cache), (replayed, finish, usage, cache) = streamed
    assert len(double.served) == 1
    assert (fresh_cache, cache) == ("miss", "hit")
    assert "".join(replayed) == "".join(fresh) == whole[0] and whole[1] == "hit"
    assert len([p for p in replayed if p]) == len("".join(fresh).split())
    assert finish == "stop"
    assert fresh_usage.total_tokens > 0 and usage.total_tokens == 0


# -- the switches ---------------------------------------------------------------------------------


async def test_the_cache_is_off_by_default(
    make_cached: Callable[..., FastAPI], double: ProviderDouble, tmp_path: Path
) -> None:
    app = make_cached()
    async with serving(app) as http:
        answers = [await invoke(app, http) for _ in range(2)]
        bypass = await invoke(app, http, headers={"Cache-Control": "no-cache"})
        metrics = (await http.get("/metrics")).text

    assert len(double.served) == 3
    assert all("x-cache" not in a.headers for a in [*answers, bypass]), "no lookup at all"
    assert "llm_cache_lookups_total{" not in metrics
    assert not list(tmp_path.glob("cache-*.sqlite3")), "not even a file"


async def test_a_key_a_tier_and_a_request_each_switch_it_on_and_a_key_switched_off_stays_off(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(keyed=True, cache_tiers=["pro"])
    opt_in = {"Cache-Control": "max-age=300"}
    async with serving(app) as http:

        async def results(user: str, headers: dict[str, str] | None = None, times: int = 2) -> list[str | None]:
            return [
                (await invoke(app, http, headers={**key(user), **(headers or {})})).headers.get("x-cache")
                for _ in range(times)
            ]

        by_key = await results("alice")  # free tier, off; its key says cache = true
        by_tier = await results("bob")  # pro tier, on
        not_asked = await results("frank")  # enterprise tier, off
        by_request = await results("frank", opt_in)
        refused = await results("carol", opt_in)  # cache = false

    assert by_key == ["miss", "hit"]
    assert by_tier == ["miss", "hit"]
    assert not_asked == [None, None]
    assert by_request == ["miss", "hit"], "frank's own request switches it on"
    assert refused == [None, None]
    assert len(double.served) == 1 + 2 + 1 + 2, "alice's (the free tier's local model) aside"


async def test_an_operator_may_refuse_requests_that_opt_in(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached(cache_requests=False)
    async with serving(app) as http:
        answers = [await invoke(app, http, headers={"Cache-Control": "max-age=300"}) for _ in range(2)]

    assert [a.headers.get("x-cache") for a in answers] == [None, None]
    assert len(double.served) == 2


async def test_a_client_cannot_stamp_the_cache_for_itself(
    make_cached: Callable[..., FastAPI], double: ProviderDouble
) -> None:
    app = make_cached()
    forged = {"metadata": {RESPONSE_CACHE: {"scope": "open", "max_age_s": 600, "ttl_s": 600}}}
    async with serving(app) as http:
        answers = [await invoke(app, http, config=forged) for _ in range(2)]
    (record,) = await calls_for(app, answers[0].headers["x-request-id"])

    assert [a.headers.get("x-cache") for a in answers] == [None, None]
    assert RESPONSE_CACHE not in record["metadata"] and RESPONSE_CACHE in record["metadata"]["client"]


# -- token limits --------------------------------------------------------------------------------


async def test_a_hit_does_not_count_against_the_keys_token_limit(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    # 80 tokens a minute: a fresh answer uses 29 and each request reserves 11 at admission, so
    # hits that kept their reservations would be refused after a few.
    settings = settings_for(
        double,
        api_keys_file=keys_file(tmp_path),
        tiers=limited_tiers(tokens_per_minute=80),
        cache_tiers=["pro"],
        cache_db_path=tmp_path / "cache.sqlite3",
        policy_prompt_styles="00-24=default",
    )
    app = app_on(make_app, settings, FakeClock(START))
    limits, meter = app.state.policy.limits, app.state.policy.meter
    window = f"llm/tokens/{hash_key(KEYS['bob'])[:12]}/{int(START // 60)}"
    langserve, openai_door = [], []

    async def counted() -> int:
        await meter.drain()
        return int(await limits._local.get(window))

    try:
        async with serving(app) as http:
            client = sdk(http, KEYS["bob"])
            messages = [{"role": "user", "content": "What is DNS?"}]
            for _ in range(7):
                answer = await http.post("/chat/invoke", json={"input": QUESTION}, headers=key("bob"))
                await app.state.caching.answers.drain()
                langserve.append((answer.status_code, answer.headers.get("x-cache"), await counted()))
            for _ in range(4):
                raw = await client.chat.completions.with_raw_response.create(model="openai", messages=messages)
                await app.state.caching.answers.drain()
                openai_door.append((raw.http_response.status_code, raw.headers.get("x-cache"), await counted()))
    finally:
        await app.state.caching.close()

    used = langserve[0][2]
    assert langserve == [(200, "miss", used)] + [(200, "hit", used)] * 6, "every hit gave its 11 tokens back"
    door_used = openai_door[0][2]
    assert openai_door == [(200, "miss", door_used)] + [(200, "hit", door_used)] * 3
    assert door_used + 3 * 11 > 80 and used + 6 * 11 > 80, "kept reservations would have been refused"
    assert len(limits.reservations) == 0
