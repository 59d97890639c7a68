"""Latency of a response-cache hit next to a miss answered by the instant provider double: the same
server (the response cache on for the open tier, its answers in SQLite) through the official
``openai`` SDK, plain and streamed, and through httpx on ``/chat/invoke``.

A miss asks a question nobody asked before (``#n``), so the provider double (no delay, in a
process of its own) answers it; a hit asks one question again and again, so the cache does. One
client sends one request at a time, kinds interleaved, so each figure is one request's latency,
not a queue's. Figures are client-side wall times, from the request to the last byte.

    .venv/bin/python benchmarks/cache_latency.py [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load import double_process, server_settings
from tests.helpers.processes import server_process

QUESTION = "What is a circuit breaker?"
Request = Callable[[str], Awaitable[str | None]]  # the question -> the response's X-Cache


def kinds(http: httpx.AsyncClient, sdk: openai.AsyncOpenAI) -> dict[str, Request]:
    async def door_invoke(question: str) -> str | None:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="openai", messages=[{"role": "user", "content": question}]
        )
        raw.parse()
        return raw.headers.get("x-cache")

    async def door_stream(question: str) -> str | None:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="openai", messages=[{"role": "user", "content": question}], stream=True
        )
        async for _ in raw.parse():
            pass
        return raw.headers.get("x-cache")

    async def chat_invoke(question: str) -> str | None:
        body = {"input": {"question": question}, "config": {"configurable": {"llm_model": "openai"}}}
        answer = await http.post("/chat/invoke", json=body)
        answer.raise_for_status()
        return answer.headers.get("x-cache")

    return {
        "/v1/chat/completions": door_invoke,
        "/v1/chat/completions stream": door_stream,
        "/chat/invoke": chat_invoke,
    }


async def timed(request: Request, question: str, expected: str) -> float:
    began = time.perf_counter()
    cache = await request(question)
    seconds = time.perf_counter() - began
    if cache != expected:
        raise AssertionError(f"expected a {expected}, the server said X-Cache: {cache}")
    return seconds * 1000


async def measure(requests: int) -> dict[str, dict[str, list[float]]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    settings = {
        **server_settings("http://unset"),
        "LLM_SERVER_CACHE_TIERS": "enterprise",  # the open server's tier
        "LLM_SERVER_CACHE_DB_PATH": str(folder / "cache.sqlite3"),
        "LLM_SERVER_POLICY_PROMPT_STYLES": "00-24=default",  # the prompt must not change with the hour
    }
    with double_process(seed=1, rate=0.0, delay_s=0.0) as (double_url, _):
        settings.update(OPENAI_BASE_URL=f"{double_url}/v1", GOOGLE_GEMINI_BASE_URL=double_url)
        with server_process(folder, settings) as url:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http, httpx.AsyncClient(timeout=60) as sdk_http:
                sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="open", http_client=sdk_http, max_retries=0)
                figures: dict[str, dict[str, list[float]]] = {}
                # Each kind its own questions: a plain and a streamed request on /v1 share answers.
                for kind, (name, request) in enumerate(kinds(http, sdk).items()):
                    for n in range(20):  # warm up: connections, model instances, the SQLite file
                        await timed(request, f"{QUESTION} ({kind}) warm-up #{n}", "miss")
                    await timed(request, f"{QUESTION} ({kind})", "miss")  # the answer its hits get
                    figures[name] = {"miss": [], "hit": []}
                for n in range(requests):
                    for kind, (name, request) in enumerate(kinds(http, sdk).items()):
                        figures[name]["miss"].append(await timed(request, f"{QUESTION} ({kind}) #{n}", "miss"))
                        figures[name]["hit"].append(await timed(request, f"{QUESTION} ({kind})", "hit"))
    return figures


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind, misses and hits each")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.requests))
    print(f"latency in ms, {args.requests} requests of each kind, one at a time")
    print(f"{'route':30} {'miss p50':>9} {'hit p50':>8} {'miss p95':>9} {'hit p95':>8} {'hit/miss':>9}")
    for name, runs in figures.items():
        miss, hit = statistics.median(runs["miss"]), statistics.median(runs["hit"])
        print(
            f"{name:30} {miss:9.2f} {hit:8.2f} {percentile(runs['miss'], 0.95):9.2f} "
            f"{percentile(runs['hit'], 0.95):8.2f} {hit / miss:9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
