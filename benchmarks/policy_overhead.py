"""What access control and the request policy cost per request, measured side by side in one run.

Both servers run the same chain (prompt | instant chat model | parser) with monitoring on,
through the whole server (HTTP /chat/invoke via httpx's ASGI transport). One serves it open,
as it is; the other with an API key on every request (key lookup, per-key request and token
limits) and the chain wrapped in ``PolicyApplied`` (classifying each question, choosing model,
style and temperature, the routing metadata on every record, the router learning from each call).

    python benchmarks/policy_overhead.py [--requests 3000] [--rounds 5]

Prints throughput of both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from benchmarks.monitoring_overhead import CONCURRENCY, InstantChatModel
from chains.policy_applied import PolicyApplied
from policy.tiers import Tier
from server import create_app
from settings import Settings
from wiring.policy import PolicyParts

KEY = "lsk_benchmark-key-0123456789"
QUESTIONS = (
    "Why does my Python code raise KeyError?",
    "hi there!",
    "What is the capital of France?",
    "정렬 알고리즘 비교",
)


async def run_http(app: Any, requests: int, headers: dict[str, str]) -> float:
    numbers = iter(range(requests))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as http:

        async def worker() -> None:
            for i in numbers:
                body = {"input": {"question": f"{QUESTIONS[i % len(QUESTIONS)]} #{i}"}}
                response = await http.post("/chat/invoke", json=body)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return requests / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    keys = folder / "keys.toml"
    keys.write_text(f'[[keys]]\nuser = "bench"\ntier = "bench"\nkey = "{KEY}"\n')
    unlimited = Tier(models=["openai", "local"], default_model="openai", requests_per_minute=10**7,
                     tokens_per_minute=10**9)  # fmt: skip
    base = ChatPromptTemplate.from_messages([("human", "Answer: {question}")]) | InstantChatModel() | StrOutputParser()
    common: dict[str, Any] = {"slow_log_path": None, "tiers": {"bench": unlimited}, "open_tier": "bench"}
    open_settings = Settings(_env_file=None, monitoring_db_path=folder / "open.sqlite3", **common)
    keyed_settings = Settings(_env_file=None, monitoring_db_path=folder / "keyed.sqlite3", api_keys_file=keys, **common)
    policy = PolicyParts.from_settings(keyed_settings, ["openai", "local"])
    app_open = create_app(open_settings, chains={"chat": base})
    app_policy = create_app(
        keyed_settings, chains={"chat": PolicyApplied(chain=base, policy=policy.policy)}, policy=policy
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    keyed = {"X-API-Key": KEY}
    await run_http(app_open, 300, {})  # warm both up
    await run_http(app_policy, 300, keyed)
    plain, governed = [], []
    for _ in range(args.rounds):  # alternate, so drift on a noisy machine hits both alike
        plain.append(await run_http(app_open, args.requests, {}))
        governed.append(await run_http(app_policy, args.requests, keyed))
    ratio = statistics.median(governed) / statistics.median(plain)
    print(f"open, no policy:     {statistics.median(plain):6.0f} req/s {[round(x) for x in plain]}")
    print(f"keys, limits, policy: {statistics.median(governed):6.0f} req/s {[round(x) for x in governed]}")
    print(f"ratio: {ratio:.3f}")
    await app_open.state.monitoring.close()
    await app_policy.state.monitoring.close()


if __name__ == "__main__":
    asyncio.run(main())
