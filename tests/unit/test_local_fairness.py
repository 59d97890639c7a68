"""A batch that fails cancels the items running and those not started; one without failures keeps
order, config factories and callbacks. (The queue shared fairly between keys, on a real engine:
``tests/system/test_local_fairness.py``.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.runnables import RunnableConfig, RunnableLambda

from chains.config_schema import FormReadyConfig


class _Runs(AsyncCallbackHandler):
    """Chain runs that started, with their metadata."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, Any]] = []

    async def on_chain_start(self, serialized: Any, inputs: Any, *, parent_run_id: Any = None, **kwargs: Any) -> None:
        if parent_run_id is None:
            self.metadata.append(dict(kwargs.get("metadata") or {}))


def _stamp(config: RunnableConfig) -> RunnableConfig:
    return {"metadata": {"stamped": str(config.get("run_id"))}}


async def test_a_failing_item_cancels_the_items_running_and_those_not_started() -> None:
    started: list[str] = []
    cancelled: list[str] = []
    slow_started = asyncio.Event()

    async def item(name: str) -> str:
        started.append(name)
        if name == "slow":
            slow_started.set()
            try:
                await asyncio.Event().wait()  # never set: only cancelling ends it
            except asyncio.CancelledError:
                cancelled.append(name)
                raise
        if name == "bad":
            await slow_started.wait()
            raise ValueError("bad item")
        return name

    chain = FormReadyConfig(bound=RunnableLambda(item), config={})
    with pytest.raises(ValueError, match="bad item"):
        await chain.abatch(["slow", "bad", "later"], {"max_concurrency": 2})

    assert started == ["slow", "bad"], "the item waiting for max_concurrency never started"
    assert cancelled == ["slow"]


async def test_a_batch_without_failures_keeps_order_config_factories_and_callbacks() -> None:
    runs = _Runs()

    def echo(value: str, config: RunnableConfig) -> tuple[str, Any, Any]:
        metadata = config.get("metadata") or {}
        return value, metadata.get("route"), metadata.get("stamped")

    served = FormReadyConfig(
        bound=RunnableLambda(echo), config={"metadata": {"route": "chat"}}, config_factories=[_stamp]
    ).with_config(callbacks=[runs])
    ids = [uuid.UUID(int=10), uuid.UUID(int=11)]

    outputs = await served.abatch(["x", "y"], [{"run_id": ids[0]}, {"run_id": ids[1]}])

    assert outputs == [("x", "chat", str(ids[0])), ("y", "chat", str(ids[1]))]
    assert sorted(m["stamped"] for m in runs.metadata) == [str(i) for i in ids]
    assert served.batch(["p", "q"]) == [("p", "chat", "None"), ("q", "chat", "None")]


async def test_return_exceptions_still_returns_every_items_outcome() -> None:
    def item(value: int) -> int:
        if value == 1:
            raise ValueError("one")
        return value

    chain = FormReadyConfig(bound=RunnableLambda(item), config={})

    outcomes = await chain.abatch([0, 1, 2], return_exceptions=True)
    assert outcomes[0] == 0 and outcomes[2] == 2 and isinstance(outcomes[1], ValueError)
    assert chain.batch([2, 1], return_exceptions=True)[0] == 2


def test_a_failing_item_of_a_sync_batch_drops_the_items_not_started() -> None:
    started: list[int] = []

    def item(value: int) -> int:
        started.append(value)
        if value == 0:
            raise ValueError("first item fails")
        return value

    chain = FormReadyConfig(bound=RunnableLambda(item), config={})
    with pytest.raises(ValueError, match="first item fails"):
        chain.batch([0, 1, 2], {"max_concurrency": 1})

    assert started == [0]
