"""The client examples' retry helper against a real server: it waits out a 503 or a 429 as the
server's Retry-After says, and raises a caller's mistake at once. Its sleep is the test's: the
fake sleep records the wait, and, for the 503, ends the outage the way an operator would."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from langserve import RemoteRunnable

from client_examples.retrying import awith_retries, explain
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.keys import KEYS, keyed_settings, limited_tiers
from tests.helpers.processes import serving
from tests.helpers.provider_double import ProviderDouble

QUESTION = {"question": "Why use a fallback ladder?"}
EVERY_RUNG_RATE_LIMITED = {
    name: {"kind": "rate_limit", "retry_after_s": 7} for name in ("openai", "gemini", "gpt4", "local")
}


def remote(url: str, route: str, **kwargs: object) -> RemoteRunnable:
    return RemoteRunnable(f"{url}/{route}/", timeout=30.0, **kwargs)  # type: ignore[arg-type]


async def close(runnable: RemoteRunnable) -> None:
    await runnable.async_client.aclose()
    runnable.sync_client.close()


async def test_a_503_is_retried_after_its_retry_after_and_then_answered(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, breaker_consecutive_failures=100))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.put("/faults", json=EVERY_RUNG_RATE_LIMITED)).status_code == 200
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            assert (await http.put("/faults", json={})).status_code == 200  # the outage ends

        fallback = remote(url, "fallback")
        try:
            answer = await awith_retries(lambda: fallback.ainvoke(QUESTION), sleep=sleep)
        finally:
            await close(fallback)

    assert waits == [7.0]
    assert answer.strip()


async def test_a_429_is_retried_after_its_retry_after_then_given_up(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(keyed_settings(double, tmp_path, tiers=limited_tiers(requests_per_minute=1)))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with serving(app) as url:
        chat = remote(url, "chat", headers={"X-API-Key": KEYS["pro"]})
        try:
            await chat.ainvoke(QUESTION)
            with pytest.raises(httpx.HTTPStatusError) as caught:
                await awith_retries(lambda: chat.ainvoke(QUESTION), attempts=3, max_wait_s=120, sleep=sleep)
        finally:
            await close(chat)

    assert caught.value.response.status_code == 429
    told = float(caught.value.response.headers["retry-after"])
    assert len(waits) == 2 and all(abs(wait - told) <= 1 for wait in waits)  # all within the same second or so
    assert "requests per minute" in explain(caught.value)


async def test_a_callers_mistake_is_raised_at_once_without_waiting(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with serving(app) as url:
        chat = remote(url, "chat")
        try:
            with pytest.raises(httpx.HTTPStatusError) as caught:
                await awith_retries(lambda: chat.ainvoke(QUESTION, {"configurable": {"temp": 1}}), sleep=sleep)
        finally:
            await close(chat)

    assert caught.value.response.status_code == 422
    assert waits == []
    assert "temp" in explain(caught.value)
