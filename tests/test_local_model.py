"""The embedded SmolLM2 model in its engine process: real generations, usage, and the bounded queue
in front of it, seen through the client every worker uses."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langchain_core.messages import HumanMessage

from errors import Cause, Overloaded, ProviderError
from providers.engine_client import EngineClient
from providers.local import LocalChatModel
from settings import Settings
from tests.conftest import AppFactory, engine_status_until, settings_for, supervised_engine

MESSAGES = [{"role": "user", "content": "Name a colour."}]


async def test_no_keys_chat_answers_from_the_local_model(make_app: AppFactory) -> None:
    app = make_app(settings_for(None))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        response = await http.post("/chat/invoke", json={"input": {"question": "What is Python?"}})

    assert response.status_code == 200
    assert response.json()["output"].strip()
    assert response.headers["x-served-by"] == "SmolLM2-135M-Instruct"
    records = sorted(
        await app.state.monitoring.store.find(request_id=response.headers["x-request-id"]), key=lambda r: r.rung
    )
    assert [(r.model, r.cause) for r in records] == [("gpt-4o-mini", "not_configured"), ("SmolLM2-135M-Instruct", None)]
    assert records[1].input_tokens > 0 and records[1].output_tokens > 0
    assert records[1].first_token_s is not None


async def test_streamed_usage_matches_llama_cpps_own_count(local_engine: EngineClient) -> None:
    from llama_cpp import Llama

    pieces = [p async for p in local_engine.astream(MESSAGES, {"max_tokens": 8, "temperature": 0.0})]

    reference = Llama(model_path=str(local_engine.model_path), n_ctx=512, verbose=False)
    usage = reference.create_chat_completion(messages=MESSAGES, max_tokens=8, temperature=0.0)["usage"]
    last = pieces[-1]
    assert last.finish_reason in ("stop", "length")
    assert sum(p.input_tokens for p in pieces) == usage["prompt_tokens"]  # sent with the first text
    assert pieces[0].input_tokens == usage["prompt_tokens"]
    assert last.output_tokens == len([p for p in pieces if p.text])
    assert 0 < last.output_tokens <= 8


def test_sync_invoke_reports_usage_metadata(local_engine: EngineClient) -> None:
    model = LocalChatModel(engine=local_engine, max_tokens=6, temperature=0.0)

    message = model.invoke([HumanMessage("Say hi.")])

    assert message.content
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > 0
    assert message.response_metadata["finish_reason"] in ("stop", "length")


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


async def test_a_prompt_longer_than_the_context_fails_as_context_length(local_engine: EngineClient) -> None:
    too_long = [{"role": "user", "content": "word " * (Settings(_env_file=None).local_context_tokens + 10)}]

    with pytest.raises(ProviderError) as caught:
        await _drain(local_engine.astream(too_long, {"max_tokens": 4}))

    assert caught.value.cause is Cause.CONTEXT_LENGTH
