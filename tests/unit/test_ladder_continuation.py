"""The ladder continues a broken stream on its next rung, in the sync and the async stream alike
(the service tests run the async one through the server; this one checks both on plain rungs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableGenerator

from chains.continuation import CONTINUE_PROMPT
from chains.ladder import FallbackLadder
from chains.rungs import Rung
from chains.serving_report import collect_serving_report
from errors import Cause, ProviderError, StreamInterrupted
from resilience.ladder_policies import LadderPolicies
from vocabulary.models import PREFILL, ModelSpec


class Rungs:
    """Rungs that stream given pieces, then break or end, and keep what each was asked."""

    def __init__(self) -> None:
        self.asked: dict[str, list[Any]] = {}

    def rung(self, model: str, pieces: list[str], *, breaks: bool = False, prefill: bool = False) -> Rung:
        def answer(inputs: Iterator[Any]) -> Iterator[str]:
            self.asked.setdefault(model, []).extend(inputs)
            yield from pieces
            if breaks:
                raise ProviderError(f"{model} was cut", cause=Cause.TRUNCATED_STREAM)

        async def aanswer(inputs: AsyncIterator[Any]) -> AsyncIterator[str]:
            async for item in inputs:
                self.asked.setdefault(model, []).append(item)
            for piece in pieces:
                yield piece
            if breaks:
                raise ProviderError(f"{model} was cut", cause=Cause.TRUNCATED_STREAM)

        capabilities = frozenset({PREFILL}) if prefill else frozenset()
        return Rung.of(ModelSpec(model, "test", model, capabilities), RunnableGenerator(answer, aanswer))


QUESTION = [HumanMessage("Where is Paris?")]


def ladder(*rungs: Rung, continue_streams: bool = True) -> FallbackLadder:
    return FallbackLadder(ladder="t", rungs=list(rungs), resilience=LadderPolicies(continue_streams=continue_streams))


@pytest.mark.parametrize("run", ["sync", "async"])
async def test_a_broken_stream_is_continued_by_the_next_rung_without_its_repeat(run: str) -> None:
    rungs = Rungs()
    chain = ladder(
        rungs.rung("a", ["Paris is", " in"], breaks=True),
        rungs.rung("b", ["is in", " France."]),
        rungs.rung("c", ["never asked"]),
    )

    with collect_serving_report() as report:
        if run == "sync":
            pieces = list(chain.stream(QUESTION))
        else:
            pieces = [piece async for piece in chain.astream(QUESTION)]

    assert "".join(pieces) == "Paris is in France."
    assert rungs.asked["b"] == [[*QUESTION, AIMessage("Paris is in"), HumanMessage(CONTINUE_PROMPT)]]
    assert "c" not in rungs.asked
    parts = [(c.served.model, c.start, c.end, c.form, c.broke, c.dropped) for c in report.contributions]
    assert parts == [("a", 0, 11, None, "truncated_stream", 0), ("b", 11, 19, "user_turn", None, 5)]


async def test_a_rung_that_takes_a_prefill_is_asked_with_one() -> None:
    rungs = Rungs()
    chain = ladder(rungs.rung("a", ["Paris is"], breaks=True), rungs.rung("b", [" in France."], prefill=True))

    pieces = [piece async for piece in chain.astream(QUESTION)]

    assert "".join(pieces) == "Paris is in France."
    assert rungs.asked["b"] == [[*QUESTION, AIMessage("Paris is")]]


async def test_switched_off_a_broken_stream_is_interrupted_and_nobody_is_asked() -> None:
    rungs = Rungs()
    chain = ladder(rungs.rung("a", ["Paris is"], breaks=True), rungs.rung("b", ["in France."]), continue_streams=False)

    pieces: list[str] = []
    with pytest.raises(StreamInterrupted) as interrupted:
        async for piece in chain.astream(QUESTION):
            pieces.append(piece)

    assert pieces == ["Paris is"]
    assert (interrupted.value.model, interrupted.value.cause) == ("a", Cause.TRUNCATED_STREAM)
    assert "b" not in rungs.asked


async def test_a_continuation_that_breaks_before_any_text_passes_to_the_rung_after() -> None:
    rungs = Rungs()
    chain = ladder(
        rungs.rung("a", ["Paris is"], breaks=True),
        rungs.rung("b", [], breaks=True),
        rungs.rung("c", [" in France."]),
    )

    with collect_serving_report() as report:
        pieces = [piece async for piece in chain.astream(QUESTION)]

    assert "".join(pieces) == "Paris is in France."
    assert [c.served.model for c in report.contributions] == ["a", "c"]
    assert rungs.asked["c"][0][-2] == AIMessage("Paris is")
