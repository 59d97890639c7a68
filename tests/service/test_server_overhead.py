"""The server's own time, shown on every response (``X-Server-Overhead-Ms``) and in ``/metrics``
(``llm_server_overhead_seconds``): the request's time less its waits for the provider. The double
answers after a second, so a figure that did not leave the wait out would show that second."""

from __future__ import annotations

import time

import httpx

from benchmarks.load import metric_sum
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.provider_double import Behaviour, ProviderDouble

SLOW_S = 1.0  # the provider's answer time


async def test_an_invokes_overhead_leaves_out_the_providers_second(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, primary_timeout_s=10))
    double.set("gpt-4o-mini", Behaviour(delay_s=SLOW_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        began = time.perf_counter()
        response = await http.post("/fallback/invoke", json={"input": {"question": "What is a breaker?"}})
        took_s = time.perf_counter() - began
        metrics = (await http.get("/metrics")).text

    assert response.status_code == 200 and took_s >= SLOW_S
    overhead_ms = float(response.headers["x-server-overhead-ms"])
    assert 0 < overhead_ms < (took_s - 0.8 * SLOW_S) * 1000, "the provider's wait is not the server's work"
    route = "/fallback/invoke"
    assert metric_sum(metrics, "llm_server_overhead_seconds_count", route=route) == 1
    assert metric_sum(metrics, "llm_server_overhead_seconds_sum", route=route) < took_s - 0.8 * SLOW_S


async def test_a_failed_rung_and_the_next_ones_waits_are_both_left_out(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, primary_timeout_s=10))
    double.set("gpt-4o-mini", Behaviour(delay_s=SLOW_S, fail_status=503))
    double.set("gemini-3.5-flash", Behaviour(delay_s=SLOW_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        began = time.perf_counter()
        response = await http.post("/fallback/stream", json={"input": {"question": "What is a breaker?"}})
        took_s = time.perf_counter() - began
        metrics = (await http.get("/metrics")).text

    assert "gemini-3.5-flash answers" in response.text and took_s >= 2 * SLOW_S
    # On a stream the header is the server's time up to its first byte; the histogram has the whole.
    assert float(response.headers["x-server-overhead-ms"]) < (took_s - 1.8 * SLOW_S) * 1000
    whole = metric_sum(metrics, "llm_server_overhead_seconds_sum", route="/fallback/stream")
    assert 0 < whole < took_s - 1.8 * SLOW_S
