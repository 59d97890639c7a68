"""The whole server against plain LangServe, and many slow streams at once, side by side in one run.

1. Throughput and latency: the same chain (prompt | instant chat model | parser) served by a
   plain FastAPI app with ``add_routes`` and by ``create_app`` (request ids, access checks,
   config checks, error mapping, monitoring callbacks, SQLite, metrics), both behind a real
   uvicorn server on localhost, driven by 32 concurrent clients over HTTP. Rounds alternate.
2. 256 concurrent streams, each a simulated 2-second generation (20 chunks, 0.1 s apart),
   through the whole server's ``/stream``: throughput as a share of the ideal (all 256 done in
   2 s) and the p99 time added to a stream.

    python benchmarks/scale.py [--requests 2000] [--rounds 5] [--streams 256]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import FastAPI
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langserve import add_routes

from benchmarks.monitoring_overhead import CONCURRENCY, InstantChatModel
from server import create_app
from settings import Settings
from tests.helpers.processes import uvicorn_process

GENERATION_S = 2.0
CHUNKS = 20


class SlowStreamingModel(InstantChatModel):
    """Streams ``CHUNKS`` chunks over ``GENERATION_S`` seconds, like a provider generating."""

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i in range(CHUNKS):
            await asyncio.sleep(GENERATION_S / CHUNKS)
            last = i == CHUNKS - 1
            usage = {"input_tokens": 12, "output_tokens": CHUNKS, "total_tokens": 12 + CHUNKS} if last else None
            chunk = AIMessageChunk(content="word ", usage_metadata=usage)  # type: ignore[arg-type]
            if last:
                chunk.response_metadata = {"finish_reason": "stop"}
            yield ChatGenerationChunk(message=chunk)


def chain(model: BaseChatModel) -> Any:
    return ChatPromptTemplate.from_messages([("human", "Answer: {question}")]) | model | StrOutputParser()


def plain_app(model: BaseChatModel) -> FastAPI:
    app = FastAPI()
    add_routes(app, chain(model), path="/chat")
    return app


def full_instant_app() -> FastAPI:
    return create_app(Settings(), chains={"chat": chain(InstantChatModel())})


def plain_instant_app() -> FastAPI:
    return plain_app(InstantChatModel())


def full_streaming_app() -> FastAPI:
    return create_app(Settings(), chains={"chat": chain(SlowStreamingModel())})


def plain_streaming_app() -> FastAPI:
    return plain_app(SlowStreamingModel())


@contextmanager
def serving(factory: str, folder: Path) -> Iterator[str]:
    """``factory`` (a function of this module) served by uvicorn in a process of its own, so the
    clients' CPU does not come out of the server's (2 cores here: one each)."""
    env = {
        **os.environ,
        "LLM_SERVER_MONITORING_DB_PATH": str(folder / f"{factory}.sqlite3"),
        "LLM_SERVER_SLOW_LOG_PATH": "",
        "LLM_SERVER_LOG_LEVEL": "warning",
    }
    with uvicorn_process(
        f"benchmarks.scale:{factory}", env, ready_path="/chat/input_schema", backlog=2048, keep_alive_s=60
    ) as (url, _):
        yield url


async def invoke_round(url: str, requests: int) -> tuple[float, list[float]]:
    """Requests per second and each request's latency, by ``CONCURRENCY`` clients."""
    numbers: Iterator[int] = iter(range(requests))
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def client() -> None:
            for i in numbers:
                began = time.perf_counter()
                response = await http.post("/chat/invoke", json={"input": {"question": f"question {i}"}})
                response.raise_for_status()
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        return requests / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def compare_throughput(folder: Path, requests: int, rounds: int) -> None:
    with serving("full_instant_app", folder) as full, serving("plain_instant_app", folder) as plain:
        await invoke_round(full, 200)  # warm up
        await invoke_round(plain, 200)
        results: dict[str, list[tuple[float, list[float]]]] = {"plain": [], "full": []}
        for _ in range(rounds):
            results["plain"].append(await invoke_round(plain, requests))
            results["full"].append(await invoke_round(full, requests))
    summary = {}
    for name, runs in results.items():
        latencies = [x for _, lat in runs for x in lat]
        summary[name] = (statistics.median(r for r, _ in runs), percentile(latencies, 50), percentile(latencies, 99))
        rate, p50, p99 = summary[name]
        rounds = [round(r) for r, _ in runs]
        print(f"{name:5}: {rate:6.0f} req/s {rounds}  p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms")
    ratio = summary["full"][0] / summary["plain"][0]
    # Each round runs both sides back to back, so a round's ratio cancels the machine's drift.
    paired = statistics.median(f / p for (f, _), (p, _) in zip(results["full"], results["plain"], strict=True))
    print(f"throughput full/plain: {ratio:.3f} of the medians, {paired:.3f} median of the rounds (target >= 0.9)")
    print(f"p50 full/plain: {summary['full'][1] / summary['plain'][1]:.2f}x, "
          f"p99 full/plain: {summary['full'][2] / summary['plain'][2]:.2f}x")  # fmt: skip


async def concurrent_streams(factory: str, folder: Path, label: str, streams: int) -> None:
    durations: list[float] = []
    with serving(factory, folder) as url:
        limits = httpx.Limits(max_connections=streams + 8)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:

            async def one(i: int) -> None:
                began = time.perf_counter()
                async with http.stream("POST", "/chat/stream", json={"input": {"question": f"q{i}"}}) as response:
                    response.raise_for_status()
                    body = b"".join([chunk async for chunk in response.aiter_bytes()])
                assert b"event: end" in body, body[-200:]
                durations.append(time.perf_counter() - began)

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(streams)))
            wall = time.perf_counter() - started
    share = GENERATION_S / wall
    added_p99 = percentile(durations, 99) - GENERATION_S
    print(f"{label}: {streams} streams of {GENERATION_S:g} s all done in {wall:.2f} s -> {share:.1%} of ideal "
          f"throughput (target >= 90%); p50 {percentile(durations, 50):.2f} s, p99 {percentile(durations, 99):.2f} s "
          f"(+{added_p99 * 1000:.0f} ms over the generation)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=256)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    await compare_throughput(folder, args.requests, args.rounds)
    await concurrent_streams("plain_streaming_app", folder, "plain", args.streams)
    await concurrent_streams("full_streaming_app", folder, "full ", args.streams)
    with sqlite3.connect(folder / "full_streaming_app.sqlite3") as db:
        print(f"calls recorded by the full server: {db.execute('SELECT count(*) FROM calls').fetchone()[0]}")


if __name__ == "__main__":
    asyncio.run(main())
