"""The raw reader (``providers.raw_stream``) opens the provider's stream without the SDK's typed
transform of the body: the request that reaches the provider is the one the SDK's own
``with_streaming_response.create`` sends, byte for byte in its body, and in its headers and query
(request options included) but for the ones the SDK makes up per request."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from providers.raw_stream import _streamed_create
from tests.helpers.provider_double import ProviderDouble, Served

# Differ between any two requests of the SDK's (a fresh id, the time left on the clock).
PER_REQUEST_HEADERS = {"idempotency-key", "x-stainless-read-timeout", "x-stainless-timeout"}

PAYLOADS: list[dict[str, Any]] = [
    {
        "model": "gpt-4o-mini",
        "stream": True,
        "temperature": 0.3,
        "stream_options": {"include_usage": True},
        "messages": [{"content": "What is a saga?", "role": "user"}],
    },
    {
        "model": "gpt-4o-mini",
        "stream": True,
        "max_completion_tokens": 64,
        "stop": ["\n\n"],
        "messages": [
            {"content": "You answer briefly.", "role": "system"},
            {"content": [{"type": "text", "text": "Name a bulkhead"}], "role": "user"},
        ],
        "extra_headers": {"x-tenant": "acme"},
        "extra_query": {"api-version": "2026-01-01"},
        "extra_body": {"metadata": {"team": "search"}},
        "timeout": 12.5,
    },
]


def _sent(served: Served) -> tuple[dict[str, Any], dict[str, str], str]:
    headers = {name: value for name, value in served.headers.items() if name not in PER_REQUEST_HEADERS}
    return served.body, headers, served.query


@pytest.mark.parametrize("payload", PAYLOADS, ids=["plain", "with-request-options"])
async def test_the_raw_reader_sends_the_request_the_sdk_sends(double: ProviderDouble, payload: dict[str, Any]) -> None:
    sdk = openai.AsyncOpenAI(api_key="sk-test-0123456789abcdef", base_url=f"{double.url}/v1", max_retries=0)
    async with sdk:
        async with sdk.chat.completions.with_streaming_response.create(**payload) as theirs:
            their_text = await theirs.text()
        async with _streamed_create(sdk.chat.completions, payload) as ours:
            our_text = await ours.text()

    assert "[DONE]" in their_text and "[DONE]" in our_text
    their_request, our_request = double.requests_for("gpt-4o-mini")
    assert _sent(our_request) == _sent(their_request)
    assert our_request.headers["x-stainless-raw-response"] == "stream"
    assert our_request.headers["authorization"] == "Bearer sk-test-0123456789abcdef"
    if "timeout" in payload:  # the request's own timeout reached the SDK
        assert our_request.headers["x-stainless-read-timeout"] == their_request.headers["x-stainless-read-timeout"]
