"""Connections to a provider are pooled, on either HTTP backend of ``LLM_SERVER_PROVIDER_HTTP``.
An invoke reads the provider's stream itself (``providers.raw_stream``) and stops at
``[DONE]``: a body closed unread there would drop the connection, and every call would pay a new
TCP connection (measured: about 4 % of the server's CPU per invoke, with the double next door)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers.provider_double import ProviderDouble
from tests.helpers.resilient import PRIMARY, Made


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_invokes_and_a_stream_one_after_another_reuse_one_provider_connection(
    make_resilient: Callable[..., Made], double: ProviderDouble, backend: str
) -> None:
    _, client, _ = make_resilient(provider_http=backend)

    for n in range(4):
        response = await client.post("/fallback/invoke", json={"input": {"question": f"What is a saga? #{n}"}})
        assert response.status_code == 200, response.text
        assert f"What is a saga? #{n}" in response.json()["output"]
    async with client.stream("POST", "/fallback/stream", json={"input": {"question": "And a bulkhead?"}}) as stream:
        body = await stream.aread()

    assert b"event: end" in body and b"event: error" not in body
    served = double.requests_for(PRIMARY)
    assert [(s.stream, s.completed) for s in served] == [(True, True)] * 5
    assert len({s.connection for s in served}) == 1, [s.connection for s in served]
