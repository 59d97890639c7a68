"""Apps whose ladders run on a fake clock, a recorded sleep and a seeded balancer, for resilience
tests: breakers open and close, retries wait, and nothing really sleeps."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from monitoring.pricing import PriceTable
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.clock import FakeClock
from tests.helpers.provider_double import ProviderDouble
from wiring.resilience import build_ladder_policies

PRIMARY, SECOND = "gpt-4o-mini", "gemini-3.5-flash"


class FakeTime(FakeClock):
    """The breakers' clock, and a sleep that records the wait (the test moves the clock)."""

    def __init__(self, now: float = 1000.0) -> None:
        super().__init__(now)
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


Made = tuple[FastAPI, httpx.AsyncClient, FakeTime]


@asynccontextmanager
async def resilient_apps(double: ProviderDouble, make_app: AppFactory) -> AsyncIterator[Callable[..., Made]]:
    """``make(**settings)``: an app on a fresh ``FakeTime`` and a client to it, closed at exit."""
    clients: list[httpx.AsyncClient] = []

    def make(**overrides: Any) -> Made:
        settings = settings_for(double, **overrides)
        fake = FakeTime()
        prices = PriceTable.from_file(settings.price_table_path)
        ladders = build_ladder_policies(settings, prices, clock=fake.clock, sleep=fake.sleep, rng=random.Random(7))
        app = make_app(settings, resilience=ladders)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server", timeout=30)
        clients.append(client)
        return app, client, fake

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


async def breaker_state(client: httpx.AsyncClient, endpoint: str = f"openai:{PRIMARY}") -> str:
    breakers = (await client.get("/monitoring/breakers")).json()["breakers"]
    return str(next(b["state"] for b in breakers if b["endpoint"] == endpoint))
