"""Monitoring overhead and memory, measured side by side in one run.

Same chain (prompt | instant chat model | parser), same concurrency; the only difference is the
monitoring callbacks (call records to SQLite, alert rules, Prometheus metrics, slow-call log).
Measured twice: through the whole server (HTTP /invoke via httpx's ASGI transport, which is what
users run) and on the bare chain (the worst case: nothing else dilutes the callbacks' cost).

    python benchmarks/monitoring_overhead.py [--requests 3000] [--rounds 5] [--memory 100000]

Prints throughput with monitoring on / off (target: at least 0.95) and the process's resident
memory after 10k and after --memory requests with monitoring on (target: within 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from server import create_app
from settings import Settings
from wiring.monitoring import Monitoring

CONCURRENCY = 32


class InstantChatModel(BaseChatModel):
    """Answers at once, with usage, like a provider with zero latency."""

    @property
    def _llm_type(self) -> str:
        return "instant"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider="openai", ls_model_name="gpt-4o-mini", ls_model_type="chat")

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        usage = {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20}
        message = AIMessage(content="An instant answer of a few words.", usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> ChatResult:
        return self._generate(messages)


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run(chain: Runnable[Any, str], requests: int) -> float:
    """Requests per second over ``requests`` calls by ``CONCURRENCY`` workers (a fixed pool, so
    the benchmark itself holds no more than ``CONCURRENCY`` requests in memory)."""
    numbers = iter(range(requests))

    async def worker() -> None:
        for i in numbers:
            await chain.ainvoke({"question": f"question {i}"}, {"metadata": {"user_id": f"u{i % 50}"}})

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return requests / (time.perf_counter() - started)


async def run_http(app: Any, requests: int) -> float:
    """Requests per second through the server's /chat/invoke, by ``CONCURRENCY`` workers."""
    numbers = iter(range(requests))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost"
    ) as http:  # an open server answers localhost names only

        async def worker() -> None:
            for i in numbers:
                body = {"input": {"question": f"question {i}"}, "config": {"metadata": {"user_id": f"u{i % 50}"}}}
                response = await http.post("/chat/invoke", json=body)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return requests / (time.perf_counter() - started)


def compare(label: str, off: list[float], on: list[float]) -> None:
    ratio = statistics.median(on) / statistics.median(off)
    print(f"{label}: monitoring off {statistics.median(off):6.0f} req/s {[round(x) for x in off]}")
    print(f"{label}: monitoring on  {statistics.median(on):6.0f} req/s {[round(x) for x in on]}")
    print(f"{label}: ratio on/off {ratio:.3f} (target >= 0.95)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory", type=int, default=100_000, help="requests for the memory check (0: skip)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    settings = Settings(_env_file=None, monitoring_db_path=folder / "m.sqlite3", slow_log_path=folder / "slow.jsonl")
    suite = Monitoring(settings)
    await suite.start()
    base = ChatPromptTemplate.from_messages([("human", "Answer: {question}")]) | InstantChatModel() | StrOutputParser()
    plain = base.with_config(run_name="plain")
    monitored = base.with_config(run_name="monitored", callbacks=suite.handlers)

    app_settings = settings.model_copy(update={"monitoring_db_path": folder / "app.sqlite3", "slow_log_path": None})
    app_on = create_app(app_settings, chains={"chat": base}, monitored=True)
    app_off = create_app(app_settings, chains={"chat": base}, monitored=False)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one log line per request would dilute the ratio
    await run_http(app_on, 200)  # warm both paths up
    await run_http(app_off, 200)
    await run(plain, 300)
    await run(monitored, 300)
    http_on, http_off, on, off = [], [], [], []
    for _ in range(args.rounds):  # alternate, so drift on a noisy machine hits both alike
        http_off.append(await run_http(app_off, args.requests // 3))
        http_on.append(await run_http(app_on, args.requests // 3))
        off.append(await run(plain, args.requests))
        on.append(await run(monitored, args.requests))
    compare("server", http_off, http_on)
    compare("chain ", off, on)
    await app_on.state.monitoring.close()
    await app_off.state.monitoring.close()

    if args.memory:
        done = 600 + 2 * args.rounds * args.requests  # chain-level calls so far
        await run(monitored, max(0, 10_000 - done))
        await suite.store.flush()
        gc.collect()
        at_10k = rss_mib()
        await run(monitored, args.memory - 10_000)
        await suite.store.flush()
        gc.collect()
        at_n = rss_mib()
        growth = at_n / at_10k - 1
        print(f"resident memory: {at_10k:.1f} MiB after 10k requests, {at_n:.1f} MiB after {args.memory // 1000}k")
        print(f"growth: {growth:+.1%} (target within 10%)")
        calls = len(await suite.store.window())
        print(f"records in SQLite: {calls}")
    await suite.close()


if __name__ == "__main__":
    asyncio.run(main())
