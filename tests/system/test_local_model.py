"""The bounded queue in front of the embedded model, each test on an engine process of its own.
(Generations and usage on the session's engine: ``tests/service/test_local_model.py``.)"""

from __future__ import annotations

import asyncio

import pytest

from errors import Overloaded
from settings import Settings
from tests.helpers.engine import engine_status_until, supervised_engine

MESSAGES = [{"role": "user", "content": "Name a colour."}]


async def test_a_full_queue_fails_at_once_as_overloaded() -> None:
    with supervised_engine(Settings(_env_file=None, local_queue_size=1)) as (_, engine):
        busy = engine.astream(MESSAGES, {"max_tokens": 32})
        await anext(busy)  # generating: it holds the only place

        with pytest.raises(Overloaded, match="waiting"):
            await _drain(engine.astream(MESSAGES, {"max_tokens": 4}))
        await busy.aclose()
        await engine.aclose()


async def test_waiting_longer_than_the_queue_timeout_fails_as_overloaded() -> None:
    with supervised_engine(Settings(_env_file=None, local_queue_timeout_s=0.05)) as (_, engine):
        # The end-of-turn token is banned, so the blocker surely generates for well over 50 ms.
        blocker = engine.astream(MESSAGES, {"max_tokens": 64, "logit_bias": {2: -100.0}})
        first = await anext(blocker)

        with pytest.raises(Overloaded, match="busy"):
            await _drain(engine.astream(MESSAGES, {"max_tokens": 4}))
        assert (await _drain(blocker))[-1].output_tokens == 64
        assert first.text
        await engine.aclose()


async def test_a_caller_that_leaves_the_queue_never_gets_generated_for() -> None:
    with supervised_engine(Settings(_env_file=None)) as (_, engine):
        blocker = engine.astream(MESSAGES, {"max_tokens": 64, "logit_bias": {2: -100.0}})
        await anext(blocker)  # generating now: the next caller queues
        queued = asyncio.ensure_future(_drain(engine.astream(MESSAGES, {"max_tokens": 64})))
        await engine_status_until(engine, lambda s: s["queue"]["waiting"] == 2, "the second caller queued")

        queued.cancel()  # its connection closes: the engine drops it from the queue
        await _drain(blocker)
        status = await engine_status_until(engine, lambda s: s["queue"]["waiting"] == 0, "an empty queue")

        assert (status["generations"]["completed"], status["generations"]["cancelled"]) == (1, 0)
        await engine.aclose()


async def _drain(stream) -> list:
    return [piece async for piece in stream]
