"""``PromptedText`` answers as ``prompt | model | StrOutputParser()`` does, in one run over the
model's: invoke, stream, their sync forms, ``astream_log`` and errors, with a real ``ChatOpenAI``
talking to the provider double (whose answer quotes the prompt it got, so the chosen prompt
alternative shows in the text)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import openai
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableConfig, RunnableSequence
from langchain_openai import ChatOpenAI

from chains.prompted_text import PromptedText
from chains.prompts import TEMPLATES, configurable_prompt
from tests.helpers.provider_double import Behaviour, ProviderDouble
from vocabulary import CONCISE_STYLE, STYLE_ID

MODEL = "gpt-4o-mini"
QUESTION = {"question": "What is a saga?"}
CONCISE: RunnableConfig = {"configurable": {STYLE_ID: CONCISE_STYLE}}


class Runs(BaseCallbackHandler):
    """The chain runs started (name, parent) and the chat model runs' parents."""

    def __init__(self) -> None:
        self.chains: list[tuple[str, UUID | None]] = []
        self.chain_ids: list[UUID] = []
        self.model_parents: list[UUID | None] = []
        self.errors: list[BaseException] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.chains.append((kwargs["name"], kwargs.get("parent_run_id")))
        self.chain_ids.append(run_id)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.model_parents.append(kwargs.get("parent_run_id"))

    def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        self.errors.append(error)


def _chains(double: ProviderDouble) -> tuple[PromptedText, RunnableSequence]:
    model = ChatOpenAI(
        model=MODEL, base_url=f"{double.url}/v1", api_key="sk-test-0123456789abcdef", max_retries=0, streaming=True
    )
    prompt = configurable_prompt()
    return PromptedText(prompt=prompt, model=model, name="chat"), RunnableSequence(
        prompt, model, StrOutputParser(), name="chat"
    )


def test_it_takes_the_input_and_configuration_the_sequence_takes(double: ProviderDouble) -> None:
    ours, sequence = _chains(double)

    for config in (None, CONCISE):
        assert (
            ours.get_input_schema(config).model_json_schema() == sequence.get_input_schema(config).model_json_schema()
        )
    assert ours.config_specs == sequence.config_specs
    untitled = [{k: v for k, v in chain.get_output_schema().model_json_schema().items() if k != "title"}
                for chain in (ours, sequence)]  # fmt: skip
    assert untitled == [{"type": "string"}] * 2


def _with(runs: Runs) -> RunnableConfig:
    return {**CONCISE, "callbacks": [runs]}


def _asked(double: ProviderDouble) -> list[str]:
    return [served.question for served in double.requests_for(MODEL)]


async def test_an_invoke_answers_as_the_sequence_in_one_run_over_the_models(double: ProviderDouble) -> None:
    ours, sequence = _chains(double)
    our_runs, their_runs = Runs(), Runs()

    answer = await ours.ainvoke(QUESTION, _with(our_runs))
    expected = await sequence.ainvoke(QUESTION, _with(their_runs))

    assert answer == expected
    prompt = TEMPLATES[CONCISE_STYLE]["en"].format(question=QUESTION["question"])
    assert _asked(double) == [prompt, prompt]  # the style the config chose, formatted as the template does
    assert our_runs.chains == [("chat", None)]
    assert our_runs.model_parents == our_runs.chain_ids  # the model's run is the chain's child
    assert len(their_runs.chains) > len(our_runs.chains)  # the sequence's prompt and parser steps


async def test_a_stream_gives_the_sequences_chunks_in_one_run(double: ProviderDouble) -> None:
    ours, sequence = _chains(double)
    our_runs = Runs()

    chunks = [chunk async for chunk in ours.astream(QUESTION, _with(our_runs))]
    expected = [chunk async for chunk in sequence.astream(QUESTION, CONCISE)]

    assert chunks == expected and len(chunks) > 3
    assert our_runs.chains == [("chat", None)]
    assert our_runs.model_parents == our_runs.chain_ids


async def test_the_stream_log_has_the_whole_answer_as_the_playground_reads_it(double: ProviderDouble) -> None:
    ours, sequence = _chains(double)

    final: Any = None
    async for patch in ours.astream_log(QUESTION, CONCISE):
        final = patch if final is None else final + patch
    expected = await sequence.ainvoke(QUESTION, CONCISE)

    assert final.state["final_output"] == expected
    assert "".join(final.state["streamed_output"]) == expected


def test_the_sync_invoke_and_stream_answer_as_the_sequence(double: ProviderDouble) -> None:
    ours, sequence = _chains(double)
    runs = Runs()

    assert ours.invoke(QUESTION, _with(runs)) == sequence.invoke(QUESTION, CONCISE)
    assert list(ours.stream(QUESTION, CONCISE)) == list(sequence.stream(QUESTION, CONCISE))
    assert runs.chains == [("chat", None)]


async def test_a_model_failure_ends_the_run_with_it_and_reaches_the_caller(double: ProviderDouble) -> None:
    double.set(MODEL, Behaviour(fail_status=400))
    ours, _ = _chains(double)
    runs = Runs()

    with pytest.raises(openai.BadRequestError) as raised:
        await ours.ainvoke(QUESTION, _with(runs))

    assert runs.errors == [raised.value]
