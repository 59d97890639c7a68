"""The embedded SmolLM2 model on the session's engine: real generations and usage, seen through the
client every worker uses. (The bounded queue, on engines of their own: ``tests/system/``.)"""

from __future__ import annotations

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from errors import Cause, ProviderError
from providers.engine_client import EngineClient
from providers.local import LocalChatModel
from settings import Settings
from tests.helpers.apps import AppFactory, settings_for

MESSAGES = [{"role": "user", "content": "Name a colour."}]
# Ends with the user: the assistant turn inside is closed, nothing is prefilled.
MULTI_TURN = [*MESSAGES, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another one."}]
PREFILL = [
    {"role": "user", "content": "Name the capital of France."},
    {"role": "assistant", "content": "The capital of France is"},
]
GREEDY = {"max_tokens": 16, "temperature": 0.0, "seed": 7}


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


@pytest.mark.parametrize("messages", [MESSAGES, MULTI_TURN], ids=["one-turn", "multi-turn"])
async def test_streamed_usage_matches_llama_cpps_own_count(
    local_engine: EngineClient, messages: list[dict[str, str]]
) -> None:
    from llama_cpp import Llama

    pieces = [p async for p in local_engine.astream(messages, {"max_tokens": 8, "temperature": 0.0})]

    reference = Llama(model_path=str(local_engine.model_path), n_ctx=512, verbose=False)
    usage = reference.create_chat_completion(messages=messages, max_tokens=8, temperature=0.0)["usage"]
    last = pieces[-1]
    assert last.finish_reason in ("stop", "length")
    assert sum(p.input_tokens for p in pieces) == usage["prompt_tokens"]  # sent with the first text
    assert pieces[0].input_tokens == usage["prompt_tokens"]
    assert last.output_tokens == len([p for p in pieces if p.text])
    assert 0 < last.output_tokens <= 8


async def test_a_trailing_assistant_message_is_continued_not_restarted(local_engine: EngineClient) -> None:
    from llama_cpp import Llama

    plain = [p async for p in local_engine.astream(PREFILL[:1], GREEDY)]
    prefilled = [p async for p in local_engine.astream(PREFILL, GREEDY)]

    vocab = Llama(model_path=str(local_engine.model_path), vocab_only=True, verbose=False)
    prefix = vocab.tokenize(PREFILL[1]["content"].encode(), add_bos=False, special=True)
    # The user's turn and the generation prompt, then the prefix left open. Rendered as a closed
    # turn, "<|im_end|>\n<|im_start|>assistant\n" would add 6 tokens after it.
    assert prefilled[0].input_tokens == plain[0].input_tokens + len(prefix)
    assert sum(p.input_tokens for p in prefilled) == prefilled[0].input_tokens
    continuation = "".join(p.text for p in prefilled)
    assert "Paris" in continuation
    assert not continuation.lstrip().startswith("The capital")  # the unprefilled answer does
    assert "".join(p.text for p in plain).startswith("The capital")
    assert prefilled[-1].finish_reason == "stop"  # its end of turn, well before max_tokens
    assert prefilled[-1].output_tokens == len([p for p in prefilled if p.text])


async def test_a_prefill_keeps_the_requests_stop_strings_and_max_tokens(local_engine: EngineClient) -> None:
    stopped = [p async for p in local_engine.astream(PREFILL, {**GREEDY, "stop": ["."]})]
    cut = [p async for p in local_engine.astream(PREFILL, {**GREEDY, "max_tokens": 1})]

    assert "".join(p.text for p in stopped).strip() == "Paris"
    assert stopped[-1].finish_reason == "stop"
    assert cut[-1].finish_reason == "length"
    assert cut[-1].output_tokens == 1


def test_the_chat_model_sends_an_ai_message_last_as_a_prefill(local_engine: EngineClient) -> None:
    model = LocalChatModel(engine=local_engine, max_tokens=16, temperature=0.0)

    message = model.invoke([HumanMessage(PREFILL[0]["content"]), AIMessage(PREFILL[1]["content"])])

    assert isinstance(message.content, str)
    assert "Paris" in message.content
    assert not message.content.lstrip().startswith("The capital")


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
