"""The dashboard end to end in headless Chromium (Debian's, driven by Playwright): it loads with
no console errors, its charts fill in after traffic, and after a fault is injected from its own
panel the fallback, the open breaker and the alert appear, all without a reload; a budget's row
fills in as calls spend from it. With API keys it opens for an admin key (as the browser's
password) and no other. With tracing on (towards a real OTLP receiver) and a trace UI URL, each
recent call links to its trace; with tracing off, none does.

Set LLM_SERVER_DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the README's picture.
"""

from __future__ import annotations

import asyncio
import os
import platform
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from policy.budgets import Budget
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.browser import chromium, page_problems
from tests.helpers.keys import KEYS, as_tier, keys_file
from tests.helpers.otlp_receiver import OtlpReceiver, running_otlp_receiver
from tests.helpers.processes import serving
from tests.helpers.provider_double import ProviderDouble

WAIT_MS = 15_000  # how long an expectation may wait for the page's next poll (every 2 s)
TRACE_UI = "http://traces.example/trace/{trace_id}"


@pytest.fixture
async def server_url(double: ProviderDouble, make_app: AppFactory) -> AsyncIterator[str]:
    app = make_app(settings_for(double, breaker_consecutive_failures=2, breaker_open_s=600))
    async with serving(app) as url:
        yield url


@pytest.fixture
async def keyed_url(double: ProviderDouble, make_app: AppFactory, tmp_path: Path) -> AsyncIterator[str]:
    app = make_app(settings_for(double, api_keys_file=keys_file(tmp_path), fault_control=True))
    async with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
async def traced_url(
    otlp_receiver: OtlpReceiver, provider_double: ProviderDouble, make_shared_app: AppFactory
) -> AsyncIterator[str]:
    """A server with tracing and trace links switched on as an operator does, by environment
    variables; the receiver is asked for first so it outlives the app's last export."""
    with pytest.MonkeyPatch.context() as env:  # read while the app is built (settings, telemetry)
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
        env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # spans reach the receiver within the test
        env.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
        env.setenv("LLM_SERVER_TRACE_UI_URL", TRACE_UI)
        app = make_shared_app(settings_for(provider_double))
    async with serving(app) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def open_dashboard(browser: Browser, url: str, width: int, height: int) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": width, "height": height})
    problems = page_problems(page)
    await page.goto(f"{url}/dashboard")
    await expect(page.locator("#status")).to_have_class("status live", timeout=WAIT_MS)
    return page, problems


async def traffic(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for model, question in [("openai", "What is DNS?"), ("gemini", "Write a haiku"), ("gpt4", "Explain TCP")]:
            config = {"configurable": {"llm_model": model}, "tags": ["browser-test"], "metadata": {"user_id": "dana"}}
            response = await http.post("/chat/invoke", json={"input": {"question": question}, "config": config})
            assert response.status_code == 200
        auto = {"configurable": {"llm_model": "auto"}}
        assert (await http.post("/chat/invoke", json={"input": {"question": "hi!"}, "config": auto})).is_success
        assert (await http.post("/fallback/stream", json={"input": {"question": "What is UDP?"}})).is_success


async def test_the_dashboard_shows_traffic_then_a_fault_its_fallback_breaker_and_alert_live(
    server_url: str, browser: Browser, tmp_path: Path
) -> None:
    page, problems = await open_dashboard(browser, server_url, 1280, 900)
    assert problems == [], "the page loads cleanly"
    await expect(page.locator("#total-calls")).to_have_text("0", timeout=WAIT_MS)
    await expect(page.locator("#engine-state")).to_have_text("ready", timeout=WAIT_MS)
    await expect(page.locator("#engine-cpu")).to_contain_text("AVX2" if platform.machine() == "x86_64" else "")

    await traffic(server_url)
    await expect(page.locator("#total-calls")).to_have_text("5", timeout=WAIT_MS)
    await page.wait_for_function(
        "window.llmDashboard.charts.latency.data.datasets[0].data.some(v => v !== null)", timeout=WAIT_MS
    )
    bars = await page.evaluate("window.llmDashboard.charts.tokens.data.labels")
    assert {"gpt-4o-mini", "gemini-3.5-flash", "gpt-4o"} <= set(bars)
    await expect(page.locator("#calls tbody tr")).to_have_count(5, timeout=WAIT_MS)
    await expect(page.locator("#calls tbody a")).to_have_count(0)  # tracing is off: no trace links
    await expect(page.locator("#routing tbody tr").first).to_contain_text("smalltalk")

    # An operator switches a 503 on for gpt-4o-mini from the dashboard's own panel.
    await page.select_option("#fault-alternative", "openai")
    await page.select_option("#fault-kind", "status")
    await page.click("#fault-apply")
    await expect(page.locator("#faults-active")).to_have_text("openai: status 503 (p=1)", timeout=WAIT_MS)
    async with httpx.AsyncClient(base_url=server_url, timeout=60) as http:
        for _ in range(3):
            answered = await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}})
            assert answered.headers["x-served-by"] == "SmolLM2-135M-Instruct"

    await expect(page.locator("#breakers td.state-open")).to_have_text("open", timeout=WAIT_MS)
    await expect(page.locator("#firing li[data-rule=circuit_breaker]")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#total-fallback-rate")).not_to_have_text("0.0%", timeout=WAIT_MS)
    await expect(page.locator("#calls tbody")).to_contain_text("error: server_error", timeout=WAIT_MS)
    causes = await page.evaluate("window.llmDashboard.charts.causes.data.labels")
    assert causes == ["server_error"]
    await page.screenshot(path=os.environ.get("LLM_SERVER_DASHBOARD_SCREENSHOT", tmp_path / "dash.png"), full_page=True)
    assert problems == [], "no console errors while it updated"


async def test_the_dashboard_fits_a_phone_screen(server_url: str, browser: Browser) -> None:
    await traffic(server_url)
    page, problems = await open_dashboard(browser, server_url, 390, 844)
    await expect(page.locator("#total-calls")).to_have_text("5", timeout=WAIT_MS)

    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")

    assert overflow <= 0, "no sideways scrolling of the page (wide tables scroll inside their panel)"
    assert problems == []


async def test_with_keys_the_dashboard_opens_for_an_admin_key_and_for_no_other(
    keyed_url: str, browser: Browser
) -> None:
    admin = await browser.new_context(
        http_credentials={"username": "dana", "password": KEYS["admin"]}, viewport={"width": 1280, "height": 900}
    )
    page = await admin.new_page()
    problems = page_problems(page)
    await page.goto(f"{keyed_url}/dashboard")
    await expect(page.locator("#status")).to_have_class("status live", timeout=WAIT_MS)
    async with httpx.AsyncClient(base_url=keyed_url, headers=as_tier("pro"), timeout=60) as http:
        answered = await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}})
        refused = await http.get("/dashboard/data")
    other = await browser.new_context(http_credentials={"username": "bob", "password": KEYS["pro"]})
    denied = await (await other.new_page()).goto(f"{keyed_url}/dashboard")

    assert answered.status_code == 200
    await expect(page.locator("#total-calls")).to_have_text("1", timeout=WAIT_MS)
    await expect(page.locator("#calls tbody")).to_contain_text("bob", timeout=WAIT_MS)  # another user's call
    await page.select_option("#fault-alternative", "openai")
    await page.select_option("#fault-kind", "status")
    await page.click("#fault-apply")
    await expect(page.locator("#faults-active")).to_have_text("openai: status 503 (p=1)", timeout=WAIT_MS)
    assert refused.status_code == 403 and refused.json()["error"] == "admin_only"
    assert denied is not None and denied.status == 403
    assert problems == [], "no console errors for the admin"


async def test_the_budgets_panel_shows_each_budgets_spend_as_calls_come_in(
    double: ProviderDouble, make_app: AppFactory, browser: Browser
) -> None:
    budgets = [Budget(name="per-user", scope="user", limit_usd="0.00005", window="daily", soft=[0.2])]
    app = make_app(settings_for(double, budgets=budgets, budget_max_output_tokens=40))
    async with serving(app) as url:
        page, problems = await open_dashboard(browser, url, 1280, 900)
        await expect(page.locator("#budgets-empty")).to_be_visible(timeout=WAIT_MS)
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            config = {"metadata": {"user_id": "erin"}}
            answer = await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}, "config": config})
        row = page.locator("#budgets tbody tr")

        assert answer.status_code == 200
        await expect(row).to_have_count(1, timeout=WAIT_MS)
        await expect(row).to_contain_text("per-user")
        await expect(row).to_contain_text("user erin")
        await expect(row.locator("td.state-half_open")).to_be_visible()  # past its soft share, under the limit
        await expect(page.locator("#budgets-empty")).to_be_hidden()
        await expect(page.locator("#firing")).to_contain_text("budget per-user (user erin) reached 20%")
        assert problems == [], "no console errors"


async def test_with_tracing_on_a_recent_call_links_to_its_trace_in_the_trace_ui(
    traced_url: str, otlp_receiver: OtlpReceiver, browser: Browser
) -> None:
    page, problems = await open_dashboard(browser, traced_url, 1280, 900)
    async with httpx.AsyncClient(base_url=traced_url, timeout=60) as http:
        config = {"tags": ["traced-call"]}
        answer = await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}, "config": config})
        calls = await http.get("/monitoring/calls", params={"request_id": answer.headers["x-request-id"]})
    trace_id = answer.headers["x-trace-id"]
    link = page.locator("#calls tbody tr", has_text="traced-call").locator("td.trace a")

    assert answer.status_code == 200
    assert [record["metadata"]["trace_id"] for record in calls.json()["calls"]] == [trace_id]
    await expect(link).to_have_attribute("href", f"http://traces.example/trace/{trace_id}", timeout=WAIT_MS)
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    await expect(link).to_have_text(trace_id[:8])
    exported = await asyncio.to_thread(otlp_receiver.wait_for, lambda spans: any(s.trace_id == trace_id for s in spans))
    assert exported, "the trace linked to is the one the collector received"
    assert problems == [], "no console errors"


async def test_with_tracing_off_no_call_links_to_a_trace_not_even_ids_a_client_sent(
    double: ProviderDouble, make_app: AppFactory, browser: Browser
) -> None:
    app = make_app(settings_for(double, trace_ui_url=TRACE_UI))
    async with serving(app) as url:
        page, problems = await open_dashboard(browser, url, 1280, 900)
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            forged = {"tags": ["forged-ids"], "metadata": {"trace_id": "a" * 32, "span_id": "b" * 16}}
            answer = await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}, "config": forged})
            calls = await http.get("/monitoring/calls", params={"request_id": answer.headers["x-request-id"]})
        row = page.locator("#calls tbody tr", has_text="forged-ids")

        assert answer.status_code == 200 and "x-trace-id" not in answer.headers
        [record] = calls.json()["calls"]
        assert "trace_id" not in record["metadata"] and record["metadata"]["client"]["trace_id"] == "a" * 32
        await expect(row).to_have_count(1, timeout=WAIT_MS)
        await expect(row.locator("td.trace")).to_have_text("")
        await expect(row.locator("a")).to_have_count(0)
        assert problems == [], "no console errors"
