"""Failover latency: our FallbackLadder (breakers, first-token deadline) against a plain
``with_fallbacks`` ladder, on the same real SDK clients and the same provider double, in one run.

    python benchmarks/failover.py [--requests 40]

Scenarios (primary gpt-4o-mini, backup gemini flash answering after ~50 ms):
- backup alone: the baseline;
- hard-down primary (503): plain ladder vs ours once its breaker is open (target: ours <= 1.05x
  the backup alone);
- hanging primary (no answer for 30 s): plain ladder (its SDK timeout, 5 s as in the seed) vs
  ours (first-token deadline until the breaker opens, nothing after).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.runnables import Runnable
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from chains.ladder import FallbackLadder
from chains.rungs import Rung
from monitoring.pricing import PriceTable
from settings import Settings
from tests.helpers.provider_double import Behaviour, ProviderDouble
from wiring.models import build_chat_model, endpoints
from wiring.resilience import build_ladder_policies

PRIMARY, BACKUP = "gpt-4o-mini", "gemini-3.5-flash"
BACKUP_DELAY_S = 0.05


def settings_for(double: ProviderDouble) -> Settings:
    return Settings(
        _env_file=None,
        openai_api_key="sk-bench-0123456789",
        openai_base_url=f"{double.url}/v1",
        google_api_key="AIzaBench0123456789",
        google_gemini_base_url=double.url,
        primary_timeout_s=5.0,
        first_token_timeout_s=0.5,
        retry_attempts=1,
        breaker_consecutive_failures=3,
    )


def plain_ladder(settings: Settings) -> Runnable[Any, Any]:
    primary = ChatOpenAI(
        model=PRIMARY,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.primary_timeout_s,
        max_retries=0,
    )
    return primary.with_fallbacks([backup_alone(settings)])


def backup_alone(settings: Settings) -> Runnable[Any, Any]:
    return ChatGoogleGenerativeAI(
        model=BACKUP,
        google_api_key=settings.google_api_key,
        base_url=settings.google_gemini_base_url,
        max_retries=0,
    )


def our_ladder(settings: Settings) -> FallbackLadder:
    served = endpoints(settings)
    kit = build_ladder_policies(settings, PriceTable.from_file(settings.price_table_path))
    openai, gemini = served["openai"][0], served["gemini"][0]
    rungs = [
        Rung.of(openai.spec, build_chat_model(openai, settings, None, timeout_s=5.0)),  # type: ignore[arg-type]
        Rung.of(gemini.spec, build_chat_model(gemini, settings, None)),  # type: ignore[arg-type]
    ]
    return FallbackLadder(ladder="bench", rungs=rungs, resilience=kit)


async def latencies(chain: Runnable[Any, Any], requests: int) -> list[float]:
    """Sequential requests, so each latency is the request's own."""
    seconds = []
    for i in range(requests):
        started = time.perf_counter()
        await chain.ainvoke(f"question {i}")
        seconds.append(time.perf_counter() - started)
    return seconds


def show(label: str, values: list[float], baseline: float | None = None) -> float:
    median = statistics.median(values)
    ratio = f"  {median / baseline:.3f}x the backup alone" if baseline else ""
    print(f"{label:<44} median {median * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms{ratio}")
    return median


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    double = ProviderDouble()
    double.start()
    try:
        settings = settings_for(double)
        double.set(BACKUP, Behaviour(delay_s=BACKUP_DELAY_S))
        await latencies(backup_alone(settings), 5)  # warm connections up

        double.set(PRIMARY, Behaviour(fail_status=503))
        ours = our_ladder(settings)
        opening = await latencies(ours, 3)  # the breaker opens after 3 failures
        rounds: dict[str, list[float]] = {"backup": [], "plain": [], "ours": []}
        for _ in range(4):  # alternate, so drift on a noisy machine hits all alike
            rounds["backup"] += await latencies(backup_alone(settings), args.requests // 4)
            rounds["plain"] += await latencies(plain_ladder(settings), args.requests // 4)
            rounds["ours"] += await latencies(ours, args.requests // 4)
        print("hard-down primary (503):")
        base = show("  backup alone", rounds["backup"])
        show("  plain with_fallbacks", rounds["plain"], base)
        show("  ours, while the breaker opens (3 requests)", opening, base)
        show("  ours, breaker open", rounds["ours"], base)

        double.set(PRIMARY, Behaviour(delay_s=30))
        ours = our_ladder(settings)
        plain = await latencies(plain_ladder(settings), 3)
        before_open = await latencies(ours, 3)
        after_open = await latencies(ours, args.requests)
        print("hanging primary (30 s):")
        show("  plain with_fallbacks (5 s SDK timeout)", plain, base)
        show("  ours, until the breaker opens (3 requests)", before_open, base)
        show("  ours, breaker open", after_open, base)
        print(f"  first-token deadline: {settings.first_token_timeout_s:g} s")
    finally:
        double.stop()


if __name__ == "__main__":
    asyncio.run(main())
