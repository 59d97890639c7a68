"""Server CPU per request on both doors: ``/chat/invoke`` and ``/chat/stream`` (LangServe) next to
``/v1/chat/completions`` plain and streamed (the OpenAI-compatible door), the same question to the
same model (``openai``, every feature on, an open server), against the instant provider double.

The double and the server run in processes of their own; the server's CPU is read from ``/proc``
before and after each round, so neither the clients' nor the provider's CPU counts. Rounds of the
four kinds alternate, so a noisy machine weighs on all of them alike; the figure per kind is the
median of its rounds. LangServe requests go through httpx, the door's through the official
``openai`` SDK, as users send them.

    .venv/bin/python benchmarks/door_cpu.py [--rounds 6] [--requests 200] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load import cpu_seconds, double_process, server_settings
from tests.helpers.processes import server_process

QUESTION = "What is a circuit breaker? #{n}"
Request = Callable[[int], Awaitable[None]]


def kinds(http: httpx.AsyncClient, sdk: openai.AsyncOpenAI) -> dict[str, Request]:
    async def chat_invoke(n: int) -> None:
        body = {"input": {"question": QUESTION.format(n=n)}, "config": {"configurable": {"llm_model": "openai"}}}
        (await http.post("/chat/invoke", json=body)).raise_for_status()

    async def chat_stream(n: int) -> None:
        body = {"input": {"question": QUESTION.format(n=n)}, "config": {"configurable": {"llm_model": "openai"}}}
        async with http.stream("POST", "/chat/stream", json=body) as response:
            response.raise_for_status()
            async for _ in response.aiter_bytes():
                pass

    async def door_invoke(n: int) -> None:
        await sdk.chat.completions.create(model="openai", messages=[{"role": "user", "content": QUESTION.format(n=n)}])

    async def door_stream(n: int) -> None:
        stream = await sdk.chat.completions.create(
            model="openai",
            messages=[{"role": "user", "content": QUESTION.format(n=n)}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in stream:
            pass

    return {
        "/chat/invoke": chat_invoke,
        "/v1/chat/completions": door_invoke,
        "/chat/stream": chat_stream,
        "/v1/chat/completions stream": door_stream,
    }


async def one_round(request: Request, requests: int, clients: int, server_pid: int, start: int) -> float:
    """Server CPU milliseconds per request for ``requests`` requests from ``clients`` at once."""
    queue = iter(range(start, start + requests))

    async def client() -> None:
        for n in queue:
            await request(n)

    before = cpu_seconds(server_pid)
    await asyncio.gather(*(client() for _ in range(clients)))
    after = cpu_seconds(server_pid)
    assert before is not None and after is not None
    return (after - before) / requests * 1000


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-door-"))
    with double_process(seed=1, rate=0.0, delay_s=0.0) as (double_url, _):
        with server_process(folder, server_settings(double_url)) as url:
            server_pid = httpx.get(f"{url}/health", timeout=10).json()["process"]
            limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                sdk_http = httpx.AsyncClient(timeout=60, limits=limits)
                sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="open", http_client=sdk_http, max_retries=0)
                requests = kinds(http, sdk)
                for request in requests.values():  # warm up: connections, caches, the first build
                    await one_round(request, args.clients * 2, args.clients, server_pid, 0)
                figures: dict[str, list[float]] = {name: [] for name in requests}
                n = 1000
                for _ in range(args.rounds):
                    for name, request in requests.items():
                        figures[name].append(await one_round(request, args.requests, args.clients, server_pid, n))
                        n += args.requests
                await sdk.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args))
    base = statistics.median(figures["/chat/invoke"])
    print(f"server CPU per request, median of {args.rounds} rounds of {args.requests} ({args.clients} connections)")
    print(f"{'route':30} {'ms':>6} {'vs /chat/invoke':>16}   rounds")
    for name, values in figures.items():
        median = statistics.median(values)
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:30} {median:6.2f} {median / base:16.2f}   {rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
