"""``FormReadyConfig``: the binding every served chain is wrapped in.

A config schema a form builder can render: LangChain types the ``tags`` and ``metadata`` a config
may carry with a ``null`` default, and a form that fills itself from the schema's defaults (the
LangServe playground does) then refuses its own data ("must be array", "must be object") and never
lets the person start. Here every ``null`` default leaves the JSON schema; validation keeps them
(a value left out is still None). The binding keeps its class through ``with_config``, so the host
can add callbacks on top.

A batch that fails stops: LangChain's default batch gathers its items, so when one raises (and
``return_exceptions`` is off) the caller has its error while the others run on to the end for
nobody, holding their places in the local model's queue. Here the first failure cancels the items
still running or waiting for ``max_concurrency``, and the batch raises that failure once they are
gone. In a sync batch the items not started yet are dropped; running ones (threads) cannot be
interrupted and finish first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableBinding, RunnableConfig
from langchain_core.runnables.config import get_config_list, get_executor_for_config
from pydantic import BaseModel, ConfigDict


def _drop_null_defaults(schema: dict[str, Any]) -> None:
    for field in schema.get("properties", {}).values():
        if isinstance(field, dict) and "default" in field and field["default"] is None:
            del field["default"]


def without_null_defaults(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` whose JSON schema names no ``null`` default for its own fields."""
    config = ConfigDict(**{**model.model_config, "json_schema_extra": _drop_null_defaults})
    return cast(type[BaseModel], type(model.__name__, (model,), {"model_config": config, "__module__": __name__}))


class _NotStarted(Exception):
    """A batch item dropped because another one had failed."""


class _FirstFailure:
    """The first error among a batch's items, in time (as ``asyncio.gather`` raises it). It is
    recorded before that item's slot (``max_concurrency``) or thread is free again, so no item
    starts after it."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self._lock = threading.Lock()  # sync batches record from worker threads

    def record(self, error: Exception) -> None:
        with self._lock:
            if self.error is None:
                self.error = error

    def check(self) -> None:
        if self.error is not None:
            raise _NotStarted


# The pydantic mypy plugin's __init__ for a binding clashes its `kwargs` field with `**kwargs`.
class FormReadyConfig(RunnableBinding[Any, Any]):  # type: ignore[no-redef]
    def config_schema(self, *, include: Sequence[str] | None = None) -> type[BaseModel]:
        return without_null_defaults(super().config_schema(include=include))

    def _item_configs(self, count: int, config: RunnableConfig | list[RunnableConfig] | None) -> list[RunnableConfig]:
        """Each item's config with this binding's own and its config factories', as
        ``RunnableBinding.batch`` merges them."""
        return [self._merge_configs(item) for item in get_config_list(config, count)]

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        if return_exceptions or len(inputs) < 2:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = self._item_configs(len(inputs), config)
        limit = configs[0].get("max_concurrency")
        gate = asyncio.Semaphore(limit) if limit else contextlib.nullcontext()
        options = {**self.kwargs, **kwargs}
        first = _FirstFailure()

        async def item(value: Any, item_config: RunnableConfig) -> Any:
            async with gate:
                first.check()
                try:
                    return await self.bound.ainvoke(value, item_config, **options)
                except Exception as exc:
                    first.record(exc)
                    raise

        tasks = [asyncio.ensure_future(item(value, c)) for value, c in zip(inputs, configs, strict=True)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # an item failed, or this batch itself was cancelled (the client left)
            for task in tasks:
                task.cancel()
            # Wait until the cancelled items are gone: their local generations have stopped then.
            await asyncio.gather(*tasks, return_exceptions=True)
        if first.error is not None:
            raise first.error
        return [task.result() for task in tasks]

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        if return_exceptions or len(inputs) < 2:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = self._item_configs(len(inputs), config)
        options = {**self.kwargs, **kwargs}
        first = _FirstFailure()

        def item(value: Any, item_config: RunnableConfig) -> Any:
            first.check()  # a worker thread may take an item up after the failure
            try:
                return self.bound.invoke(value, item_config, **options)
            except Exception as exc:
                first.record(exc)
                raise

        with get_executor_for_config(configs[0]) as executor:  # waits for the running items at its end
            futures = [executor.submit(item, value, c) for value, c in zip(inputs, configs, strict=True)]
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in futures:
                future.cancel()  # only those not started yet
        if first.error is not None:
            raise first.error
        return [future.result() for future in futures]
