"""The continuation request and the overlap a continuing model repeats (chains.continuation),
and how a continued answer's chunks go out (chains.streamed_answer)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.prompt_values import ChatPromptValue

from chains.continuation import CONTINUE_PROMPT, PREFILL, USER_TURN, OverlapTrimmer, continuation_input, other_form
from chains.streamed_answer import StreamedAnswer


def continued(sent: str, pieces: list[str]) -> tuple[str, int]:
    trimmer = OverlapTrimmer(sent)
    out = "".join(trimmer.feed(piece) for piece in pieces) + trimmer.finish()
    return sent + out, trimmer.dropped


@pytest.mark.parametrize(
    ("sent", "pieces", "whole"),
    [
        # the last word repeated, with and without the space between
        ("The capital of", [" of", " France."], "The capital of France."),
        ("The capital of ", ["of Fra", "nce."], "The capital of France."),
        # the sentence restarted
        (
            "Paris is the capital. It lies on",
            ["It lies", " on the Seine."],
            "Paris is the capital. It lies on the Seine.",
        ),
        # the whole answer repeated, in pieces
        (
            "Paris is the capital. It lies on",
            ["Paris is the ", "capital. It lies on", " the Seine."],
            "Paris is the capital. It lies on the Seine.",
        ),
        # a true continuation, mid-word, and one that only looks like a repeat for a while
        ("The capi", ["tal of France"], "The capital of France"),
        ("He went to the cat", ["alog store"], "He went to the catalog store"),
        ("one two", [" three"], "one two three"),
        # one letter is as likely a new word as a repeat: kept
        ("a b", [" b c"], "a b b c"),
    ],
)
def test_the_repeated_end_of_the_answer_is_dropped_and_nothing_else(sent: str, pieces: list[str], whole: str) -> None:
    assert continued(sent, pieces)[0] == whole


def test_the_trimmer_counts_what_it_dropped() -> None:
    assert continued("The capital of", [" of", " France."]) == ("The capital of France.", 3)
    assert continued("one two", [" three"])[1] == 0


def test_a_continuation_that_only_repeats_is_dropped_whole_at_its_end() -> None:
    trimmer = OverlapTrimmer("one two three")
    assert trimmer.feed(" two three") == ""
    assert trimmer.finish() == ""
    assert trimmer.dropped == len(" two three")


def test_the_start_is_held_only_while_it_could_still_be_a_repeat() -> None:
    trimmer = OverlapTrimmer("Paris is the capital. It lies on")
    assert trimmer.feed("It") == "", "could be the sentence again"
    assert trimmer.feed(" is near") == "It is near", "it is not: everything goes out at once"
    assert trimmer.feed(" here") == " here"


def test_the_continuation_request_in_each_form() -> None:
    question = ChatPromptValue(messages=[SystemMessage("Be brief."), HumanMessage("Where is Paris?")])

    prefill = continuation_input(question, "Paris is in", PREFILL)
    turn = continuation_input(question, "Paris is in", USER_TURN)

    assert [(m.type, m.text) for m in prefill] == [
        ("system", "Be brief."),
        ("human", "Where is Paris?"),
        ("ai", "Paris is in"),
    ]
    assert [(m.type, m.text) for m in turn][-2:] == [("ai", "Paris is in"), ("human", CONTINUE_PROMPT)]
    assert continuation_input([HumanMessage("Hi")], "Hel", PREFILL) == [HumanMessage("Hi"), AIMessage("Hel")]
    assert (other_form(PREFILL), other_form(USER_TURN)) == (USER_TURN, PREFILL)


def test_a_held_back_start_goes_out_as_one_chunk_keeping_its_usage() -> None:
    answer = StreamedAnswer()
    answer.begin()
    answer.feed(AIMessageChunk(content="The capital of"))
    answer.begin()  # a break: the next rung continues

    held = answer.feed(AIMessageChunk(content=" of"))
    last = AIMessageChunk(content=" France.", usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7})
    out = answer.feed(last)

    assert held is None
    assert out is not None and out.text == " France."
    assert out.usage_metadata == last.usage_metadata
    assert answer.text == "The capital of France."
    part = answer.part()
    assert part is not None and (part.start, part.end, part.dropped) == (14, 22, 3)
