"""What budgets cost the server: CPU per request with no budget, with a budget counted in the
process's memory, and with one counted in Redis (a hold and a settlement per call, one Lua script
each, and a read at admission), side by side.

Three ``python server.py`` processes (an open server; the budget, when set, is on every user, so
every request counts against it and none reaches its limit) call one instant provider double,
each in a process of its own; a ``redis-server`` of its own for the third. The kinds are
``/chat/invoke`` (httpx) and ``/v1/chat/completions`` (the official ``openai`` SDK), 16
connections; rounds alternate between the servers, and each server's CPU is read from ``/proc``
(its own process only: not Redis's, the double's or the clients'). The figure per server and kind
is the median of its rounds.

    .venv/bin/python benchmarks/budget_overhead.py [--rounds 6] [--requests 200] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.door_cpu import Request, kinds, one_round
from benchmarks.load import double_process, server_settings
from tests.helpers.processes import RedisServer, server_process

BUDGET = json.dumps([{"name": "everyone", "scope": "user", "limit_usd": "1000", "window": "daily"}])
KINDS = ("/chat/invoke", "/v1/chat/completions")


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    redis_server = RedisServer()
    redis_server.start()
    try:
        with double_process(seed=1, rate=0.0, delay_s=0.0) as (double_url, _), ExitStack() as stack:
            base = server_settings(double_url)
            variants = {
                "no budget": base,
                "budget, memory": {**base, "LLM_SERVER_BUDGETS": BUDGET},
                "budget, Redis": {**base, "LLM_SERVER_BUDGETS": BUDGET, "REDIS_URL": redis_server.url},
            }
            urls = {name: stack.enter_context(server_process(folder / str(i), env)) for i, (name, env) in
                    enumerate(variants.items())}  # fmt: skip
            return await _rounds(urls, args)
    finally:
        redis_server.kill()


async def _rounds(urls: dict[str, str], args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    figures: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in KINDS} for name in urls}
    async with AsyncExitStack() as clients:
        requests: dict[str, dict[str, Request]] = {}
        pids: dict[str, int] = {}
        for name, url in urls.items():
            pids[name] = httpx.get(f"{url}/health", timeout=10).json()["process"]
            http = await clients.enter_async_context(httpx.AsyncClient(base_url=url, timeout=60, limits=limits))
            sdk_http = await clients.enter_async_context(httpx.AsyncClient(timeout=60, limits=limits))
            sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="open", http_client=sdk_http, max_retries=0)
            requests[name] = {kind: request for kind, request in kinds(http, sdk).items() if kind in KINDS}
        for name, by_kind in requests.items():  # warm up
            for request in by_kind.values():
                await one_round(request, args.clients * 2, args.clients, pids[name], 0)
        n = 1000
        for _ in range(args.rounds):
            for kind in KINDS:
                for name, by_kind in requests.items():
                    ms = await one_round(by_kind[kind], args.requests, args.clients, pids[name], n)
                    figures[name][kind].append(ms)
                    n += args.requests
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args))
    rounds = f"median of {args.rounds} rounds of {args.requests} ({args.clients} connections)"
    print(f"server CPU per request (ms), {rounds}")
    print(f"{'server':16} " + " ".join(f"{kind:>22}" for kind in KINDS) + "   vs no budget")
    base = {kind: statistics.median(figures["no budget"][kind]) for kind in KINDS}
    for name, by_kind in figures.items():
        medians = {kind: statistics.median(values) for kind, values in by_kind.items()}
        ratios = " ".join(f"{medians[kind] / base[kind]:.2f}" for kind in KINDS)
        print(f"{name:16} " + " ".join(f"{medians[kind]:22.2f}" for kind in KINDS) + f"   {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
