"""``TextParser`` answers as ``StrOutputParser`` does, with no trip to the thread pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser

from chains.text_parser import TextParser


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def _chunks() -> AsyncIterator[AIMessageChunk]:
    for part in ("A circuit ", "breaker ", "trips."):
        yield AIMessageChunk(content=part)


async def _run(parser: StrOutputParser) -> tuple[str, list[str], int]:
    # On a loop of its own: the session's shares its default executor with every other test.
    executor = CountingExecutor()

    async def parse() -> tuple[str, list[str]]:
        asyncio.get_running_loop().set_default_executor(executor)
        invoked = await parser.ainvoke(AIMessage(content="A circuit breaker trips."))
        return invoked, [part async for part in parser.atransform(_chunks())]

    with executor:
        invoked, streamed = await asyncio.to_thread(asyncio.run, parse())
    return invoked, streamed, executor.submitted


async def test_text_parser_gives_str_output_parsers_answers_without_the_thread_pool() -> None:
    theirs = await _run(StrOutputParser())
    ours = await _run(TextParser())

    assert theirs[2] >= 4, "StrOutputParser goes to the pool once an invoke and once a chunk"
    assert ours[:2] == theirs[:2] == ("A circuit breaker trips.", ["A circuit ", "breaker ", "trips."])
    assert ours[2] == 0
