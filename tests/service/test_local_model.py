"""The embedded SmolLM2 model on the session's engine: real generations and usage, seen through the
client every worker uses. (The bounded queue, on engines of their own: ``tests/system/``.)"""

from __future__ import annotations

import httpx
import pytest
from langchain_core.messages import HumanMessage

from errors import Cause, ProviderError
from providers.engine_client import EngineClient
from providers.local import LocalChatModel
from settings import Settings
from tests.helpers.apps import AppFactory, settings_for

MESSAGES = [{"role": "user", "content": "Name a colour."}]


async def test_no_keys_chat_answers_from_the_local_model(make_app: AppFactory) -> None:
    app = make_app(settings_for(None))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        response = await http.post("/chat/invoke", json={"input": {"question": "What is Python?"}})

    assert response.status_code == 200
    assert response.json()["output"].strip()
    assert response.headers["x-served-by"] == "SmolLM2-135M-Instruct"
    records = sorted(
        await app.state.monitoring.store.find(request_id=response.headers["x-request-id"]), key=lambda r: r.rung
    )
    assert [(r.model, r.cause) for r in records] == [("gpt-4o-mini", "not_configured"), ("SmolLM2-135M-Instruct", None)]
    assert records[1].input_tokens > 0 and records[1].output_tokens > 0
    assert records[1].first_token_s is not None


async def test_streamed_usage_matches_llama_cpps_own_count(local_engine: EngineClient) -> None:
    from llama_cpp import Llama

    pieces = [p async for p in local_engine.astream(MESSAGES, {"max_tokens": 8, "temperature": 0.0})]

    reference = Llama(model_path=str(local_engine.model_path), n_ctx=512, verbose=False)
    usage = reference.create_chat_completion(messages=MESSAGES, max_tokens=8, temperature=0.0)["usage"]
    last = pieces[-1]
    assert last.finish_reason in ("stop", "length")
    assert sum(p.input_tokens for p in pieces) == usage["prompt_tokens"]  # sent with the first text
    assert pieces[0].input_tokens == usage["prompt_tokens"]
    assert last.output_tokens == len([p for p in pieces if p.text])
    assert 0 < last.output_tokens <= 8


def test_sync_invoke_reports_usage_metadata(local_engine: EngineClient) -> None:
    model = LocalChatModel(engine=local_engine, max_tokens=6, temperature=0.0)

    message = model.invoke([HumanMessage("Say hi.")])

    assert message.content
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > 0
    assert message.response_metadata["finish_reason"] in ("stop", "length")


async def _drain(stream) -> list:
    return [piece async for piece in stream]


async def test_a_prompt_longer_than_the_context_fails_as_context_length(local_engine: EngineClient) -> None:
    too_long = [{"role": "user", "content": "word " * (Settings(_env_file=None).local_context_tokens + 10)}]

    with pytest.raises(ProviderError) as caught:
        await _drain(local_engine.astream(too_long, {"max_tokens": 4}))

    assert caught.value.cause is Cause.CONTEXT_LENGTH
