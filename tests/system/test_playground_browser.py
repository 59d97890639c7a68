"""The LangServe playground of every chain route in headless Chromium (Debian's, driven by
Playwright), with the remote models answering from the provider double.

On each route the page renders its configuration form with the route's real choices, a person
picks them, types a question and presses Start, the answer streams into the output box, and the
call record (``GET /monitoring/calls``) and the provider's request show that the choice reached
the model. A field left empty stays the request policy's to decide. With API keys configured a
browser gets in with the key as its HTTP Basic password; one without the key gets the 401.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, Response, expect
from playwright.async_api import Error as PlaywrightError

from chains.prompts import PROMPT_STYLES, TEMPLATES
from policy.keys import hash_key
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.browser import chromium, page_problems
from tests.helpers.processes import serving
from tests.helpers.provider_double import Behaviour, ProviderDouble
from vocabulary import ALTERNATIVES as MODEL_ALTERNATIVES
from vocabulary import AUTO

WAIT_MS = 15_000  # an answer: the page's own fetches, the chain, the double
QUESTION = "What is DNS?"
# Longer than /quality's 50 characters, so the first rung's answer passes its check.
ANSWER = "DNS turns names such as example.com into the numeric addresses that computers use to connect."
REMOTE_MODELS = ("gpt-4o-mini", "gpt-4o", "gemini-3.5-flash")
KEY = "lsk_playground-person-0123456789"
LABELS = {"llm_model": "LLM model", "prompt_style": "Prompt style", "llm_temperature": "LLM temperature"}


@dataclass(frozen=True)
class Visit:
    """One route's playground: what its form offers, what the person picks, who should answer."""

    route: str
    offered: dict[str, tuple[str, ...]]  # select's configurable id -> its options
    picks: dict[str, str]
    answered_by: str  # the alternative expected to answer
    temperature_shown: str  # the temperature field before anyone types: empty means the policy's
    style: str = "default"  # the prompt the provider should see
    policy: bool = True  # the route's records carry the policy's decision


VISITS = [
    Visit(
        "chat",
        offered={"llm_model": (*MODEL_ALTERNATIVES, AUTO), "prompt_style": PROMPT_STYLES},
        picks={"llm_model": "gemini", "prompt_style": "concise"},
        answered_by="gemini",
        temperature_shown="",
        style="concise",
    ),
    # The router never explores here, so a factual question goes to its first choice, openai.
    Visit(
        "adaptive",
        offered={"prompt_style": PROMPT_STYLES},
        picks={"prompt_style": "concise"},
        answered_by="openai",
        temperature_shown="",
        style="concise",
    ),
    Visit("fallback", offered={}, picks={}, answered_by="openai", temperature_shown="0.7", policy=False),
    Visit("quality", offered={}, picks={}, answered_by="openai", temperature_shown="0.7", policy=False),
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    opened = await browser.new_context(viewport={"width": 1280, "height": 1000})
    yield opened
    await opened.close()


@pytest.fixture
def answering(double: ProviderDouble) -> ProviderDouble:
    for model in REMOTE_MODELS:
        double.set(model, Behaviour(text=ANSWER))
    return double


@pytest.fixture
async def server_url(answering: ProviderDouble, make_app: AppFactory) -> AsyncIterator[str]:
    async with serving(make_app(settings_for(answering, routing_exploration=0.0))) as url:
        yield url


@pytest.fixture
async def keyed_url(answering: ProviderDouble, make_app: AppFactory, tmp_path: Path) -> AsyncIterator[str]:
    keys = tmp_path / "api_keys.toml"
    keys.write_text(f'[[keys]]\nuser = "dana"\ntier = "pro"\nsha256 = "{hash_key(KEY)}"\n')
    async with serving(make_app(settings_for(answering, api_keys_file=keys))) as url:
        yield url


async def open_playground(context: BrowserContext, url: str, route: str) -> tuple[Page, list[str]]:
    page = await context.new_page()
    problems = page_problems(page)
    await page.goto(f"{url}/{route}/playground/")
    try:
        await expect(page.get_by_role("heading", name="Configure")).to_be_visible()
        await expect(page.get_by_label("Question")).to_be_visible()  # the input form, after its schema fetch
    except AssertionError as blank:
        raise AssertionError(f"the playground did not render its forms; the page said {problems}") from blank
    return page, problems


async def options(select: Locator) -> list[str]:
    values: list[str] = await select.locator("option").evaluate_all("options => options.map(o => o.value)")
    return [value for value in values if value]  # "" is the select's "None"


async def fill_number(field: Locator, value: str) -> None:
    """Type ``value`` into a number field as a person would: again if the form, re-rendering after
    an earlier pick (the playground's forms do, under load), emptied it before it took."""
    for _ in range(3):
        await field.fill(value)
        await field.press("Tab")  # committed on change, as when a person leaves the field
        try:
            await expect(field).to_have_value(value, timeout=2_000)
            return
        except AssertionError:
            continue
    await expect(field).to_have_value(value)


async def ask(page: Page, url: str, route: str, picks: dict[str, str], temperature: str | None) -> Response:
    """Fill the form, press Start, wait for the answer; returns the playground's stream_log call."""
    for config_id, value in picks.items():
        await page.get_by_label(LABELS[config_id]).select_option(value)
    if temperature is not None:
        await fill_number(page.get_by_label(LABELS["llm_temperature"]), temperature)
    await page.get_by_label("Question").fill(QUESTION)
    start = page.get_by_role("button", name="Start")
    await expect(start).to_be_enabled()  # the form found no fault in its own data
    async with page.expect_response(f"{url}/{route}/stream_log") as streamed:
        await start.click()
    output = page.get_by_role("heading", name="Output").locator("xpath=following-sibling::div[1]")
    await expect(output).to_have_text(ANSWER, timeout=WAIT_MS)
    return await streamed.value


def sent_configurable(stream_log: Response) -> dict[str, Any]:
    body = json.loads(stream_log.request.post_data or "{}")
    return dict(body["config"]["configurable"])


async def call_records(url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        response = await http.get("/monitoring/calls")
    assert response.status_code == 200, response.text
    return list(response.json()["calls"])


def provider_temperature(served_body: dict[str, Any]) -> float | None:
    temperature = served_body.get("temperature", served_body.get("generationConfig", {}).get("temperature"))
    return None if temperature is None else float(temperature)


@pytest.mark.parametrize("visit", VISITS, ids=lambda visit: visit.route)
async def test_the_playground_streams_an_answer_with_the_model_style_and_temperature_chosen_in_its_form(
    visit: Visit, server_url: str, context: BrowserContext, answering: ProviderDouble
) -> None:
    page, problems = await open_playground(context, server_url, visit.route)
    for config_id, offered in visit.offered.items():
        assert sorted(await options(page.get_by_label(LABELS[config_id]))) == sorted(offered), config_id
    for config_id in {"llm_model", "prompt_style"} - set(visit.offered):
        await expect(page.get_by_label(LABELS[config_id])).to_have_count(0)
    temperature = page.get_by_label(LABELS["llm_temperature"])
    await expect(temperature).to_have_attribute("type", "number")
    await expect(temperature).to_have_value(visit.temperature_shown)

    stream_log = await ask(page, server_url, visit.route, visit.picks, "0.3")

    assert stream_log.ok and stream_log.headers["content-type"].startswith("text/event-stream")
    assert sent_configurable(stream_log) == {**visit.picks, "llm_temperature": 0.3}
    [record] = await call_records(server_url)
    assert (record["route"], record["alternative"], record["outcome"]) == (visit.route, visit.answered_by, "ok")
    if visit.policy:
        routing = record["metadata"]["routing"]
        assert (routing["model"], routing["prompt_style"], routing["temperature"]) == (
            visit.answered_by,
            visit.style,
            0.3,
        )
        assert routing["temperature_reason"] == "set by the client"
    [served] = answering.requests_for(record["model"])
    assert served.stream and served.completed, "the model streamed its whole answer"
    assert provider_temperature(served.body) == 0.3
    assert served.question == TEMPLATES[visit.style]["en"].format(question=QUESTION)
    assert problems == []


async def test_fields_left_empty_in_the_playground_are_the_request_policys_to_pick(
    server_url: str, context: BrowserContext, answering: ProviderDouble
) -> None:
    page, problems = await open_playground(context, server_url, "chat")

    stream_log = await ask(page, server_url, "chat", {"llm_model": "gemini"}, temperature=None)

    assert sent_configurable(stream_log) == {"llm_model": "gemini"}, "an untouched field is not sent"
    [record] = await call_records(server_url)
    routing = record["metadata"]["routing"]
    assert routing["model_reason"] == "set by the client"
    assert routing["temperature_reason"].startswith("factual question")
    assert routing["prompt_style_reason"].startswith("time of day")
    [served] = answering.requests_for(record["model"])
    assert provider_temperature(served.body) == routing["temperature"]
    assert problems == []


async def test_with_api_keys_a_browser_gets_in_with_the_key_as_its_password(
    keyed_url: str, browser: Browser, answering: ProviderDouble
) -> None:
    context = await browser.new_context(http_credentials={"username": "anyone", "password": KEY})
    try:
        page, problems = await open_playground(context, keyed_url, "chat")
        await ask(page, keyed_url, "chat", {"llm_model": "gemini"}, "0.3")
    finally:
        await context.close()

    [record] = await call_records(keyed_url, headers={"X-API-Key": KEY})
    assert (record["metadata"]["user_id"], record["metadata"]["tier"]) == ("dana", "pro")
    assert record["alternative"] == "gemini"
    assert problems == []


async def test_with_api_keys_a_browser_without_the_key_gets_the_401(keyed_url: str, context: BrowserContext) -> None:
    page = await context.new_page()

    async with page.expect_response(f"{keyed_url}/chat/playground/") as refused:
        # Headless, with nobody to type the key, Chromium gives up on the Basic challenge.
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            await page.goto(f"{keyed_url}/chat/playground/")

    response = await refused.value
    assert response.status == 401
    assert 'Basic realm="llm-server"' in await response.header_values("www-authenticate")
