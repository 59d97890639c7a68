"""Apps whose per-key limits count on a test's clock (in a shared Redis, when given)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from policy.limits import CallerLimits, TokenMeter
from settings import Settings
from tests.helpers.apps import AppFactory
from tests.helpers.clock import FakeClock
from wiring.models import configured_alternatives
from wiring.policy import PolicyParts
from wiring.shared_state import SharedState

START = math.floor(1_750_000_000 / 60) * 60 + 1.0  # one second into a minute's window


def app_on(make_app: AppFactory, settings: Settings, clock: FakeClock, shared: SharedState | None = None) -> FastAPI:
    """The app, its limits counted on ``clock`` (in ``shared``'s Redis, when given)."""
    kit = PolicyParts.from_settings(settings, configured_alternatives(settings), shared=shared)
    limits = CallerLimits(shared.limit_counters() if shared is not None else None, clock=clock)
    policy = dataclasses.replace(kit, limits=limits, meter=TokenMeter(limits, settings.tiers))
    return make_app(settings, policy=policy, shared=shared)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        yield http
