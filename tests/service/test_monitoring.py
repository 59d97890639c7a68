"""Server-side monitoring through the app: 32 concurrent requests give 32 separate correct records."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.provider_double import Behaviour, ProviderDouble


async def test_32_concurrent_requests_give_32_separate_correct_records(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    # The primary's timeout is not what this test is about: under a loaded CI machine 32 requests
    # at once can take longer than the 1 s the other tests use, and a fallback adds a record.
    remote_app = make_app(settings_for(double, primary_timeout_s=30))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=remote_app), base_url="http://server")

    def delay(question: str) -> float:
        match = re.search(r"wait (\d+)ms", question)
        return int(match[1]) / 1000 if match else 0.0

    double.set("gpt-4o-mini", Behaviour(delay_for=delay))

    async def ask(i: int) -> httpx.Response:
        payload = {
            "input": {"question": f"question {i} wait {20 * (i % 8)}ms " + "word " * i},
            "config": {"metadata": {"user_id": f"user-{i}"}},
        }
        return await client.post("/fallback/invoke", json=payload)

    responses = await asyncio.gather(*(ask(i) for i in range(32)))

    assert all(r.status_code == 200 for r in responses)
    served = {s.question: s for s in double.requests_for("gpt-4o-mini")}
    run_ids = set()
    for i, response in enumerate(responses):
        (record,) = await remote_app.state.monitoring.store.find(request_id=response.headers["x-request-id"])
        (sent,) = [s for q, s in served.items() if f"question {i} wait" in q]
        assert record.metadata["user_id"] == f"user-{i}"
        assert (record.input_tokens, record.output_tokens) == (sent.input_tokens, sent.output_tokens)
        assert record.answer_chars == len(response.json()["output"])
        assert record.duration_s >= delay(sent.question)
        run_ids.add(record.run_id)
    assert len(run_ids) == 32
    await client.aclose()
