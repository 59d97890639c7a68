"""Chains built from settings, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.runnables import ConfigurableField

from chains.cached_fields import CachedConfigurableFields
from chains.policy_applied import PolicyApplied
from chains.prompts import detect_language
from monitoring.pricing import PriceTable
from providers.local_engine import LocalEngine
from settings import Settings
from tests.helpers.apps import settings_for
from tests.helpers.provider_double import ProviderDouble
from wiring.chains import ModelRungs, ladder_options, served_chains
from wiring.models import configured_alternatives
from wiring.policy import PolicyParts
from wiring.resilience import build_ladder_policies


def test_a_configured_model_is_built_once_per_distinct_configuration(double: ProviderDouble) -> None:
    from langchain_google_genai import ChatGoogleGenerativeAI

    model = ChatGoogleGenerativeAI(model="gemini-3.5-flash", google_api_key="k", base_url=double.url)
    field = ConfigurableField(id="llm_temperature")
    configurable = CachedConfigurableFields(default=model, fields={"temperature": field})

    first, _ = configurable.prepare({"configurable": {"llm_temperature": 0.3}})
    again, _ = configurable.prepare({"configurable": {"llm_temperature": 0.3}})
    other, _ = configurable.prepare({"configurable": {"llm_temperature": 0.9}})
    untouched, _ = configurable.prepare({})

    assert first is again
    assert other is not first
    assert (first.temperature, other.temperature) == (0.3, 0.9)  # type: ignore[attr-defined]
    assert untouched is model


@pytest.mark.parametrize(
    "question,language",
    [("인공지능이란 무엇인가요?", "ko"), ("What is AI?", "en"), ("Explain 파이썬 briefly", "ko"), ("1 + 1?", "en")],
)
def test_the_prompt_language_follows_the_question(question: str, language: str) -> None:
    assert detect_language(question) == language


def chat_chain(settings: Settings, engine: LocalEngine) -> PolicyApplied:
    kit = build_ladder_policies(settings, PriceTable.from_file(settings.price_table_path))
    policy = PolicyParts.from_settings(settings, configured_alternatives(settings)).policy
    options = ladder_options(settings, settings.fallback_ladder)
    chat = served_chains(ModelRungs(settings, engine, kit), kit, policy, options)["chat"]
    assert isinstance(chat, PolicyApplied)
    return chat


def test_the_prompt_style_and_language_reach_the_prompt(local_engine: LocalEngine) -> None:
    prompt = chat_chain(settings_for(None), local_engine).chain.prompt  # type: ignore[attr-defined]

    korean = prompt.invoke({"question": "머신러닝이란?"}, {"configurable": {"prompt_style": "concise"}})
    english = prompt.invoke({"question": "What is ML?"}, {"configurable": {"prompt_style": "detailed"}})
    forced = prompt.invoke({"question": "머신러닝이란?", "language": "en"})

    assert korean.to_string().endswith("한 문장으로 답변: 머신러닝이란?")
    assert "Format:" in english.to_string() and "What is ML?" in english.to_string()
    assert "Please answer the following question: 머신러닝이란?" in forced.to_string()


async def test_auto_works_without_a_server_on_the_models_that_are_configured(local_engine: LocalEngine) -> None:
    chat = chat_chain(settings_for(None), local_engine)  # no keys: only the local model can answer
    handler = RoutingRecorder()

    answer = await chat.ainvoke(
        {"question": "What is the capital of France?"}, {"configurable": {"llm_model": "auto"}, "callbacks": [handler]}
    )

    assert answer
    assert handler.routing["model"] == "local"
    assert handler.routing["question_type"] == "factual"


class RoutingRecorder(AsyncCallbackHandler):
    """Keeps the routing decision the chat model's run carried in its metadata."""

    routing: dict[str, Any]

    async def on_chat_model_start(self, *args: Any, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.routing = (metadata or {})["routing"]
