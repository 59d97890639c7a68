"""What a LangServe route's response tells its client it got, from the request's serving report;
and the quality gate judging chat messages as it judges text."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk

from api.served_metadata import StreamAnnotator, annotate_response, route_kind
from chains.quality import QualityGate
from chains.serving_report import Served, ServingReport
from errors import QualityRejected
from tests.helpers.records import call


def report_of(*runs: tuple[str, str, list[int]]) -> ServingReport:
    """A report where each (run id, model, [output tokens per call]) was served by its last call."""
    report = ServingReport()
    for run_id, model, outputs in runs:
        for n, output in enumerate(outputs):
            report.add_call(
                call(run_id=f"{run_id}-{n}", root_run_id=run_id, output_tokens=output, cost_usd=Decimal("0.5"))
            )
        report.add_served(Served("fallback", len(outputs) - 1, "gemini", model, tries=len(outputs), run_id=run_id))
    return report


def test_an_invoke_answer_carries_the_serving_rung_and_what_its_calls_used() -> None:
    body = json.dumps({"output": "hi", "metadata": {"run_id": "r1", "feedback_tokens": []}}).encode()

    metadata = json.loads(annotate_response(body, report_of(("r1", "gemini-3.5-flash", [0, 7]))))["metadata"]

    assert metadata["run_id"] == "r1"
    assert metadata["served_by"] == {
        "model": "gemini-3.5-flash", "alternative": "gemini", "ladder": "fallback", "rung": 1, "attempts": 2
    }  # fmt: skip
    assert metadata["usage"]["calls"] == 2
    assert metadata["usage"]["output_tokens"] == 7
    assert metadata["usage"]["cost_usd"] == "1.0"


def test_each_batch_item_is_told_its_own_rung_and_usage() -> None:
    responses = [{"run_id": "a", "feedback_tokens": []}, {"run_id": "b", "feedback_tokens": []}]
    body = json.dumps({"output": ["x", "y"], "metadata": {"responses": responses}}).encode()
    report = report_of(("a", "gpt-4o-mini", [3]), ("b", "gemini-3.5-flash", [0, 5]))

    items = json.loads(annotate_response(body, report))["metadata"]["responses"]

    assert [(i["served_by"]["model"], i["usage"]["output_tokens"]) for i in items] == [
        ("gpt-4o-mini", 3),
        ("gemini-3.5-flash", 5),
    ]


def test_a_stream_tells_the_serving_rung_after_the_run_id_and_the_usage_before_end() -> None:
    report = report_of(("r1", "gpt-4o-mini", [4]))
    report.streaming = report.served[0]
    annotator = StreamAnnotator(report)

    first = annotator.feed(b'event: metadata\r\ndata: {"run_id": "r1"}\r\n\r\nevent: data\r\ndata: "Hi"\r\n\r\n')
    later = annotator.feed(b'event: data\r\ndata: " there"\r\n\r\n')
    last = annotator.feed(b"event: end\r\n\r\n")

    events = [block for block in (first + later + last).split(b"\r\n\r\n") if block]
    assert events[0] == b'event: metadata\r\ndata: {"run_id": "r1"}'
    assert json.loads(events[1].split(b"data: ")[1])["served_by"]["model"] == "gpt-4o-mini"
    assert json.loads(events[-2].split(b"data: ")[1])["usage"]["output_tokens"] == 4
    assert events[-1] == b"event: end"
    assert b"served_by" not in later


def test_only_langserve_endpoints_are_annotated() -> None:
    paths = ("/chat/invoke", "/fallback/c/xyz/batch", "/chat/stream", "/v1/chat/completions")

    assert [route_kind(path) for path in paths] == ["invoke", "batch", "stream", None]


def test_the_quality_gate_judges_a_message_by_its_text_and_returns_the_message() -> None:
    gate = QualityGate(min_chars=5)
    answer = AIMessage("long enough", usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3})

    assert gate.invoke(answer) is answer
    with pytest.raises(QualityRejected):
        gate.invoke(AIMessage("hi"))


def test_the_quality_gate_holds_message_chunks_back_until_their_text_passes() -> None:
    gate = QualityGate(min_chars=5)
    chunks = [AIMessageChunk(content="He"), AIMessageChunk(content="llo"), AIMessageChunk(content=" world")]

    released = list(gate.transform(iter(chunks)))

    assert [c.text for c in released] == ["Hello", " world"]
    with pytest.raises(QualityRejected):
        list(gate.transform(iter([AIMessageChunk(content="Hi")])))
