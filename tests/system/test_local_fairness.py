"""The local model's queue is shared fairly between API keys, and a batch that fails cancels its
queued generations (issue 14).

The engine is the real one, in its own process, with a queue of four places. A blocker (a long
generation with the end-of-turn token banned) holds the worker, so everything else waits in the
queue for as long as the test needs; the engine's ``status`` shows who waits, who was refused,
shed or withdrawn, and what was generated.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from errors import Overloaded
from policy.keys import hash_key
from providers.engine_client import EngineClient
from providers.local_engine import Piece
from settings import Settings
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.engine import engine_status_until, supervised_engine
from tests.helpers.keys import KEYS, as_tier, keys_file
from tests.helpers.provider_double import Behaviour, Fault, ProviderDouble

LOCAL_MODEL = "SmolLM2-135M-Instruct"
CAPACITY = 4
MESSAGES = [{"role": "user", "content": "Name a colour."}]
BLOCKING = {"max_tokens": 1500, "logit_bias": {2: -100.0}}  # generates until it is closed
KEY_A, KEY_B = "pro", "enterprise"  # two keys whose tiers may use the local model


def key_id(tier: str) -> str:
    return hash_key(KEYS[tier])[:12]


def ask_local(question: str = "Name a colour.") -> dict[str, Any]:
    return {"input": {"question": question}, "config": {"configurable": {"llm_model": "local"}}}


@pytest.fixture
def engine() -> Iterator[EngineClient]:
    """An engine of this test's own, so its counts are this test's."""
    with supervised_engine(Settings(_env_file=None, local_queue_size=CAPACITY)) as (_, client):
        yield client


@pytest.fixture
async def blocker(engine: EngineClient) -> AsyncIterator[AsyncGenerator[Piece]]:
    """A generation of key A's that holds the worker (and one place) until the test closes it."""
    stream = engine.astream(MESSAGES, BLOCKING, caller=key_id(KEY_A))
    await anext(stream)
    yield stream
    await stream.aclose()


async def drain(stream: AsyncIterator[Piece]) -> list[Piece]:
    return [piece async for piece in stream]


def queue_of(status: dict[str, Any]) -> dict[str, Any]:
    return status.get("queue") or {}


def waiting_is(places: int) -> Callable[[dict[str, Any]], bool]:
    """Whether the engine's queue holds ``places`` (the running generation's included)."""
    return lambda status: queue_of(status).get("waiting") == places


async def test_a_caller_behind_another_callers_full_queue_is_admitted_and_served_next(
    engine: EngineClient, blocker: AsyncGenerator[Piece]
) -> None:
    served: list[str] = []  # whose generation started, in order: the worker runs one at a time

    async def call(name: str, caller: str) -> list[Piece]:
        pieces: list[Piece] = []
        async for piece in engine.astream(MESSAGES, {"max_tokens": 2}, caller=caller):
            if not pieces:
                served.append(name)
            pieces.append(piece)
        return pieces

    a_calls = []
    for n in range(1, CAPACITY):  # one by one, so their order in A's lane is known
        a_calls.append(asyncio.ensure_future(call(f"a{n}", key_id(KEY_A))))
        await engine_status_until(engine, waiting_is(1 + n), f"a{n} queued")

    with pytest.raises(Overloaded, match="4 of them this caller's"):  # A's own extra is refused
        await drain(engine.astream(MESSAGES, {"max_tokens": 2}, caller=key_id(KEY_A)))

    b_call = asyncio.ensure_future(call("b", key_id(KEY_B)))  # the queue is full, all of it A's
    with pytest.raises(Overloaded, match="gave its place"):
        await a_calls[-1]  # A's newest waiting request made room for B's
    status = await engine.status()
    assert queue_of(status) == {
        "waiting": CAPACITY,
        "capacity": CAPACITY,
        "callers": 2,
        "refused": 1,
        "shed": 1,
        "withdrawn": 0,
    }

    await blocker.aclose()  # the worker is free: B's turn comes before A's older requests
    await asyncio.gather(b_call, *a_calls[:-1])

    assert served == ["b", "a1", "a2"]
    status = await engine_status_until(engine, waiting_is(0), "an empty queue")
    assert (status["generations"]["completed"], status["generations"]["cancelled"]) == (3, 1)


@pytest.fixture
async def http(make_app: AppFactory, engine: EngineClient, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An open-to-the-keys app on the test's engine, with no remote provider: local answers or nobody."""
    settings = settings_for(None, api_keys_file=keys_file(tmp_path), local_queue_size=CAPACITY, local_max_tokens=4)
    app = make_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s", timeout=60) as client:
        yield client


async def test_one_keys_batch_filling_the_local_queue_leaves_room_for_another_keys_call(
    http: httpx.AsyncClient, engine: EngineClient, blocker: AsyncGenerator[Piece]
) -> None:
    batch_body = {
        "inputs": [{"question": f"Name colour number {n}."} for n in range(CAPACITY - 1)],
        "config": {"configurable": {"llm_model": "local"}},
    }
    batch = asyncio.ensure_future(http.post("/chat/batch", json=batch_body, headers=as_tier(KEY_A)))
    await engine_status_until(engine, waiting_is(CAPACITY), "A's batch queued")

    extra = await http.post("/chat/invoke", json=ask_local(), headers=as_tier(KEY_A))
    assert extra.status_code == 503  # A already holds every place: its own extra is refused
    assert [(a["model"], a["cause"]) for a in extra.json()["attempts"]] == [(LOCAL_MODEL, "overloaded")]

    other_key = asyncio.ensure_future(http.post("/chat/invoke", json=ask_local(), headers=as_tier(KEY_B)))
    failed = await batch  # B took the place of one of A's batch items, so A's batch failed ...
    assert failed.status_code == 503
    assert [(a["model"], a["cause"]) for a in failed.json()["attempts"]] == [(LOCAL_MODEL, "overloaded")]
    status = await engine_status_until(  # ... and its other items left the queue with it
        engine, lambda s: queue_of(s).get("withdrawn") == CAPACITY - 2, "A's batch items withdrawn"
    )
    assert queue_of(status)["waiting"] == 2  # the blocker and B's call
    assert not other_key.done()

    await blocker.aclose()
    answered = await other_key

    assert answered.status_code == 200, answered.text
    assert answered.headers["x-served-by"] == LOCAL_MODEL
    status = await engine_status_until(engine, waiting_is(0), "an empty queue")
    assert status["generations"]["completed"] == 1, "only B's call was generated; none of A's batch"
    assert queue_of(status)["shed"] == 1


@pytest.fixture
async def remote_http(
    make_app: AppFactory, engine: EngineClient, double: ProviderDouble
) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(settings_for(double, local_max_tokens=4), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s", timeout=60) as client:
        yield client


async def test_a_batch_whose_item_fails_cancels_its_queued_local_generations(
    remote_http: httpx.AsyncClient, engine: EngineClient, double: ProviderDouble, blocker: AsyncGenerator[Piece]
) -> None:
    arrived, release = threading.Event(), threading.Event()

    def refuse_when_released(question: str) -> Fault:
        # Holds the double's answer (its own thread) until the batch's local items are queued.
        arrived.set()
        release.wait(30)
        return Fault(status=400)  # the caller's fault: the ladder stops there, no local fallback

    double.set("gpt-4o-mini", Behaviour(fault_for=refuse_when_released))
    local = {"configurable": {"llm_model": "local"}}
    body = {
        "inputs": [{"question": f"Question {n}?"} for n in range(4)],
        "config": [{"configurable": {"llm_model": "openai"}}, local, local, local],
    }
    batch = asyncio.ensure_future(remote_http.post("/chat/batch", json=body))
    await engine_status_until(engine, waiting_is(4), "the batch's local items queued")
    assert await asyncio.to_thread(arrived.wait, 10)

    release.set()
    failed = await batch

    assert failed.status_code == 422, failed.text  # the item's error is the batch's answer at once
    assert failed.json()["error"] == "invalid_request"
    status = await engine_status_until(engine, waiting_is(1), "the batch's items gone")
    assert queue_of(status)["withdrawn"] == 3
    await blocker.aclose()
    status = await engine_status_until(engine, waiting_is(0), "an empty queue")
    assert (status["generations"]["completed"], status["generations"]["cancelled"]) == (0, 1)
