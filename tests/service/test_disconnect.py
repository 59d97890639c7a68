"""A client that hangs up mid-stream: the generation it asked for stops, and the attempt is
recorded as cancelled with the tokens it used until then. Over real HTTP (uvicorn), because only
a real connection going away produces the disconnect the server has to notice."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx

from policy.budgets import Budget
from providers.engine_client import EngineClient
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.engine import engine_status_until
from tests.helpers.processes import serving
from tests.helpers.provider_double import Behaviour, ProviderDouble
from vocabulary.records import CallRecord

MAX_TOKENS = 300  # the question below runs to this limit when nobody stops it (temperature 0)
LONG = {"question": "Tell me a long story about a dragon and a knight, with many details."}
LOCAL = {"configurable": {"llm_model": "local", "llm_temperature": 0.0}}


async def read_then_hang_up(
    http: httpx.AsyncClient, question: dict[str, str], config: dict[str, Any], *, chunks: int
) -> tuple[int, str]:
    """Stream an answer, read ``chunks`` pieces of it, then close the connection; returns how
    many pieces were read and the request id."""
    received = 0
    async with http.stream("POST", "/chat/stream", json={"input": question, "config": config}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: ") and isinstance(json.loads(line[6:]), str):
                received += 1
            if received == chunks:
                break  # leaving the block closes the connection: the client is gone
    return received, response.headers["x-request-id"]


async def test_hanging_up_mid_stream_stops_the_local_model_and_records_a_cancelled_attempt(
    make_app: AppFactory, local_engine: EngineClient
) -> None:
    app = make_app(settings_for(None, local_max_tokens=MAX_TOKENS))
    recorded: asyncio.Queue[CallRecord] = asyncio.Queue()
    app.state.monitoring.feed(recorded.put_nowait)
    before = (await local_engine.status())["generations"]

    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        received, request_id = await read_then_hang_up(http, LONG, LOCAL, chunks=3)

        record = await asyncio.wait_for(recorded.get(), 30)
        # The engine process notices the closed connection on its own: wait until it stopped.
        after = await engine_status_until(local_engine, lambda s: not s["generations"]["running"], "idle")
        health = (await http.get("/health")).json()["local_model"]

    generated = after["generations"]["tokens"] - before["tokens"]
    assert after["generations"]["cancelled"] == before["cancelled"] + 1
    assert (health["cancelled"], health["generating"]) == (before["cancelled"] + 1, False)
    assert received <= generated < MAX_TOKENS / 2, f"{generated} tokens generated after the client left"
    assert (record.request_id, record.model) == (request_id, "SmolLM2-135M-Instruct")
    assert (record.outcome, record.cause) == ("cancelled", "cancelled")
    assert received <= record.output_tokens <= generated  # what reached the stream before it was cut
    assert record.input_tokens > 0  # the prompt was read before the first token
    (stored,) = await app.state.monitoring.store.find(request_id=request_id)
    assert (stored.outcome, stored.output_tokens) == ("cancelled", record.output_tokens)


async def test_hanging_up_mid_stream_closes_the_providers_stream_and_keeps_the_tokens_streamed(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    words = 200  # at 20 ms a word: 4 s of streaming if nobody hangs up
    double.set("gpt-4o-mini", Behaviour(text=" ".join(["word"] * words), chunk_delay_s=0.02))
    app = make_app(settings_for(double))
    recorded: asyncio.Queue[CallRecord] = asyncio.Queue()
    app.state.monitoring.feed(recorded.put_nowait)

    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        received, _ = await read_then_hang_up(http, {"question": "count"}, {}, chunks=3)
        record = await asyncio.wait_for(recorded.get(), 30)

    (served,) = double.requests_for("gpt-4o-mini")
    assert served.chunks_sent < words / 2  # the provider's stream was closed, not read to the end
    assert (record.model, record.outcome, record.cause) == ("gpt-4o-mini", "cancelled", "cancelled")
    assert received <= record.output_tokens <= served.chunks_sent


async def test_a_stream_the_client_abandons_is_billed_to_its_budget_prompt_and_tokens_streamed(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    double.set("gpt-4o-mini", Behaviour(text=" ".join(["word"] * 200), chunk_delay_s=0.02))
    budget = Budget(name="all", scope="user", limit_usd=1)
    app = make_app(settings_for(double, budgets=[budget]))
    recorded: asyncio.Queue[CallRecord] = asyncio.Queue()
    app.state.monitoring.feed(recorded.put_nowait)

    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        await read_then_hang_up(http, {"question": "count"}, {}, chunks=3)
        record = await asyncio.wait_for(recorded.get(), 30)
        await app.state.budgets.drain()
        [standing] = (await http.get("/budgets")).json()["budgets"]

    assert record.outcome == "cancelled" and record.metadata["usage_estimated"] is True
    assert record.input_tokens > 0, "the provider read the whole prompt: it bills it"
    assert record.cost_usd is not None and Decimal(standing["spent_usd"]) == record.cost_usd > 0
    assert Decimal(standing["held_usd"]) == 0, "the abandoned call's hold was released"
