"""Apps whose per-key limits count on a test's clock (in a shared Redis, when given)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from policy.kit import PolicyKit
from policy.limits import CallerLimits, TokenMeter
from providers.catalog import configured_alternatives
from settings import Settings
from shared_state.kit import SharedState
from tests.helpers.apps import AppFactory
from tests.helpers.clock import FakeClock

START = math.floor(1_750_000_000 / 60) * 60 + 1.0  # one second into a minute's window


def app_on(make_app: AppFactory, settings: Settings, clock: FakeClock, shared: SharedState | None = None) -> FastAPI:
    """The app, its limits counted on ``clock`` (in ``shared``'s Redis, when given)."""
    kit = PolicyKit.from_settings(settings, configured_alternatives(settings), shared=shared)
    storage = shared.limits_storage() if shared is not None else None
    limits = CallerLimits(storage, link=shared.link if shared is not None else None, clock=clock)
    policy = dataclasses.replace(kit, limits=limits, meter=TokenMeter(limits, settings.tiers))
    return make_app(settings, policy=policy, shared=shared)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        yield http
