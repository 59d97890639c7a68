"""What a stream continuation costs: the pause the client sees where a broken stream is handed to
the next model, and the extra tokens that model is asked to read, through the real server over HTTP.

    .venv/bin/python benchmarks/continuation_cost.py [--rounds 7] [--local-max-tokens 32] [--json figures.json]

Three processes: the provider double (``tests/helpers/provider_double.py`` under uvicorn), the
whole server (``python server.py``, the embedded local model on, monitoring on) and this one, the
client. The primary, gpt-4o-mini on the double, streams a 59-word answer a word every 20 ms
(``chunk_delay_s``) and, on a request marked ``cut``, ends its stream after half of it without a
finish reason; on one marked ``down`` it answers 503 before any text. Five kinds of request, one of
each per round, rounds repeated (the figures are medians over rounds, with their ranges):

- remote continuation, ``/fallback/stream`` (openai -> gemini -> gpt4 -> local): gemini flash on
  the double continues the cut answer, asked with a user turn; it repeats the last three words it
  was shown and goes on, as models do, and the server must drop the repeat;
- remote fallback before any text, the same route: the primary answers 503, gemini answers afresh;
- local continuation, ``/chat/stream`` with ``llm_model=openai`` (openai -> local): SmolLM2
  continues the cut answer from an assistant prefill (``LLM_SERVER_PREFILL_MODELS`` default);
- local fallback before any text, the same route: the primary answers 503, the local model answers;
- local fresh, ``/chat/stream`` with ``llm_model=local``: the same question the local continuation
  was asked, to the local model alone (its own time to first token, and its input tokens).

Latency is read by the client from the arrival of each SSE ``data`` event: the gap at the break
(last event of the primary to the first of the continuation, located with the provenance's
``continued[0].at``) against the normal gap between two of the primary's events, and against the
first data event of a request whose primary fails before any text (an ordinary fallback). Extra
tokens come from the call records (``GET /monitoring/calls?request_id=``): the continuing call's
input tokens minus those of the same model asked the same question afresh in the same round. The
double counts a token per word; the local model's are its tokenizer's.

So that every round takes the same path: retries off (``LLM_SERVER_RETRY_ATTEMPTS=1``: a 503 falls
over at once rather than after a backoff) and breakers that never open (every round fails the
primary twice). Each request is also checked (the answer, the provenance, the records); a failed
check is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from starlette.types import ASGIApp

from benchmarks.load import server_settings, sse_events
from chains.continuation import CONTINUE_PROMPT
from tests.helpers.processes import server_process, uvicorn_process
from tests.helpers.provider_double import Behaviour, Fault, ProviderDouble

PRIMARY, BACKUP = "gpt-4o-mini", "gemini-3.5-flash"
CHUNK_DELAY_S = 0.02
ANSWER = (
    "A circuit breaker watches the calls to one provider and counts how many of them fail. When too "
    "many fail in a row it opens, and the server skips that provider at once instead of waiting for "
    "another timeout. After a pause it lets a single probe through, and if the probe succeeds the "
    "breaker closes and traffic returns."
)
WORDS = ANSWER.split(" ")
CUT_AT = len(WORDS) // 2 + 1  # the double's default cut: after these words
SENT = " ".join(WORDS[:CUT_AT])  # what reaches the client before the break
REPEATED = " ".join(WORDS[CUT_AT - 3 : CUT_AT])  # what gemini repeats of it
CONTINUATION = " ".join(WORDS[CUT_AT - 3 :])
# The request's own number leads the question: llama.cpp reuses the previous prompt's longest common
# prefix, so every kind of local request finds only the system prompt cached, never its question.
QUESTION = "(request {number}, {marker}) What does a circuit breaker do in an LLM server?"
MARKER = re.compile(r"\(request \d+, (\w+)\)")


# -- the provider double, in a process of its own ----------------------------------------------
def _primary_fault(question: str) -> Fault | None:
    marker = MARKER.search(question)
    kind = marker.group(1) if marker else None
    if kind == "cut":
        return Fault(cut_after=-1)  # the default cut point: CUT_AT words
    if kind == "down":
        return Fault(status=503)
    return None


def continuation_double() -> ASGIApp:
    """The double for this benchmark (uvicorn factory): the primary cuts or fails as the question
    says; gemini answers with the end of the primary's answer, three words of it repeated."""
    double = ProviderDouble(keep_bodies=False)
    double.set(PRIMARY, Behaviour(text=ANSWER, chunk_delay_s=CHUNK_DELAY_S, fault_for=_primary_fault))
    double.set(BACKUP, Behaviour(text=CONTINUATION))
    return double.app


@contextmanager
def double_process() -> Iterator[str]:
    with uvicorn_process(
        "benchmarks.continuation_cost:continuation_double",
        dict(os.environ),
        ready_path="/double/served",
        backlog=128,
        keep_alive_s=120,
    ) as (url, _):
        yield url


# -- the requests --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    marker: str  # what the primary does with the question (not asked at all for local_fresh)
    configurable: dict[str, Any] | None
    calls: int  # model calls the request makes


CHAT = {"prompt_style": "default", "llm_temperature": 0.0}
KINDS = (
    Kind("remote_cut", "/fallback/stream", "cut", None, 2),
    Kind("remote_down", "/fallback/stream", "down", None, 2),
    Kind("local_cut", "/chat/stream", "cut", {**CHAT, "llm_model": "openai"}, 2),
    Kind("local_down", "/chat/stream", "down", {**CHAT, "llm_model": "openai"}, 2),
    # The very question local_cut asks (the marker too), so the input tokens compare one to one.
    Kind("local_fresh", "/chat/stream", "cut", {**CHAT, "llm_model": "local"}, 1),
)


@dataclass
class Result:
    kind: Kind
    round: int
    status: int = 0
    events: list[tuple[str, str, float]] = field(default_factory=list)  # (event, data, seconds since sent)
    records: list[dict[str, Any]] = field(default_factory=list)  # in the order the calls started
    problems: list[str] = field(default_factory=list)

    @property
    def data(self) -> list[tuple[str, float]]:
        return [(json.loads(d), t) for e, d, t in self.events if e == "data"]

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.data)

    @property
    def final(self) -> dict[str, Any]:
        told = [json.loads(d) for e, d, _ in self.events if e == "metadata"]
        return dict(told[-1]) if told else {}

    def problem(self, what: str) -> None:
        self.problems.append(f"round {self.round} {self.kind.name}: {what}")


async def send(http: httpx.AsyncClient, kind: Kind, n: int, number: int) -> Result:
    """One request of ``kind`` in round ``n``; ``number``: the request's own, three digits."""
    result = Result(kind, n)
    body: dict[str, Any] = {"input": {"question": QUESTION.format(number=number, marker=kind.marker)}}
    if kind.configurable:
        body["config"] = {"configurable": kind.configurable}
    request_id = f"continuation-{number}-{kind.name}"
    began = time.perf_counter()
    async with http.stream("POST", kind.path, json=body, headers={"x-request-id": request_id}) as response:
        result.status = response.status_code
        async for name, payload in sse_events(response):
            result.events.append((name, payload, time.perf_counter() - began))
    result.records = await records_of(http, request_id, kind.calls)
    return result


async def records_of(http: httpx.AsyncClient, request_id: str, expected: int) -> list[dict[str, Any]]:
    """The request's call records, oldest first, once ``expected`` of them are there (records
    reach the store just after the stream ends)."""
    deadline = time.monotonic() + 10
    while True:
        response = await http.get("/monitoring/calls", params={"request_id": request_id})
        response.raise_for_status()
        calls = response.json()["calls"]
        if len(calls) >= expected or time.monotonic() > deadline:
            return sorted(calls, key=lambda c: c["started_at"])
        await asyncio.sleep(0.05)  # another process's flush: there is no event to wait on


# -- what each request shows ----------------------------------------------------------------------
def _handover_index(result: Result, at: int) -> int | None:
    """Index of the first data event of the continuation (which starts at character ``at``)."""
    offset = 0
    for i, (text, _) in enumerate(result.data):
        if offset == at:
            return i
        if offset < at < offset + len(text):
            result.problem(f"a data event straddles the handover at character {at}")
            return None
        offset += len(text)
    result.problem(f"no data event starts at the handover's character {at}")
    return None


def check_stream(result: Result) -> None:
    """Every request: 200, an end event, the metadata event with provenance and usage just before it."""
    names = [e for e, _, _ in result.events]
    if result.status != 200:
        result.problem(f"HTTP {result.status}")
    if "error" in names:
        result.problem("error event: " + next(d for e, d, _ in result.events if e == "error")[:200])
    if not names or names[-1] != "end":
        result.problem(f"no end event (events: {names[-3:]})")
    elif len(names) < 2 or names[-2] != "metadata" or "provenance" not in result.final:
        result.problem("the event before end is not the metadata event with the provenance")
    if len(result.records) != result.kind.calls:
        seen = [(r["model"], r["outcome"], r["cause"]) for r in result.records]
        result.problem(f"{len(result.records)} call records, expected {result.kind.calls}: {seen}")
    usage = result.final.get("usage") or {}
    recorded = sum(r["input_tokens"] for r in result.records), sum(r["output_tokens"] for r in result.records)
    if (usage.get("input_tokens"), usage.get("output_tokens")) != recorded:
        result.problem(f"metadata usage {usage} does not add up to the records' tokens {recorded}")


def check_cut(result: Result, continuing: str, form: str) -> None:
    told = result.final.get("provenance") or {}
    if told.get("outcome") != "continued":
        result.problem(f"provenance outcome {told.get('outcome')!r}, expected 'continued'")
        return
    handovers = told.get("continued") or []
    if len(handovers) != 1:
        result.problem(f"{len(handovers)} handovers: {handovers}")
        return
    (handover,) = handovers
    expected = {"from": PRIMARY, "to": handover["to"], "at": len(SENT), "cause": "truncated_stream"}
    if handover != expected or not handover["to"].startswith(continuing):
        result.problem(f"handover {handover}, expected {expected} to {continuing}")
    if not result.text.startswith(SENT):
        result.problem(f"the answer does not start with what the primary sent: {result.text[:120]!r}")
    first, second = told["contributors"]
    if first["chars"] != [0, len(SENT)] or second["chars"] != [len(SENT), len(result.text)]:
        result.problem(f"contributors' chars {first['chars']} {second['chars']} for {len(result.text)} streamed")
    if (first["form"], second["form"], second["ended"]) != (None, form, "finished"):
        result.problem(f"forms {first['form']}/{second['form']}, ended {second['ended']}")
    if len(result.records) == 2:
        primary, cont = result.records
        if (primary["model"], primary["outcome"], primary["cause"]) != (PRIMARY, "error", "truncated_stream"):
            result.problem(f"primary's record {primary['model']} {primary['outcome']} {primary['cause']}")
        continues = cont["metadata"].get("continues")
        if continues != {"model": PRIMARY, "at": len(SENT), "form": form}:
            result.problem(f"continuation record's metadata.continues {continues}")
        for part, record in ((first, primary), (second, cont)):
            usage = part.get("usage") or {}
            if (usage.get("input_tokens"), usage.get("output_tokens")) != (
                record["input_tokens"],
                record["output_tokens"],
            ):
                result.problem(f"{part['model']}: provenance usage {usage} is not its record's")


def check_fresh(result: Result, answering: str) -> None:
    told = result.final.get("provenance") or {}
    models = [c["model"] for c in told.get("contributors") or []]
    if told.get("outcome") != "complete" or len(models) != 1 or not models[0].startswith(answering):
        result.problem(f"provenance {told.get('outcome')} by {models}, expected complete by {answering}")


def measure(result: Result) -> dict[str, float | int | None]:
    """The figures of one request (seconds and tokens); also checks it."""
    check_stream(result)
    kind = result.kind.name
    data = result.data
    figures: dict[str, float | int | None] = {"first_event_s": data[0][1] if data else None}
    if kind == "remote_cut":
        check_cut(result, BACKUP, "user_turn")
        if result.text != ANSWER:
            result.problem(f"answer is not the primary's with the repeat dropped: {result.text[len(SENT) - 40 :]!r}")
    elif kind == "local_cut":
        check_cut(result, "SmolLM2", "prefill")
    elif kind == "remote_down":
        check_fresh(result, BACKUP)
    else:
        check_fresh(result, "SmolLM2")
    if kind.endswith("_cut") and result.final.get("provenance", {}).get("continued"):
        at = result.final["provenance"]["continued"][0]["at"]
        i = _handover_index(result, at)
        if i is not None and i > 1:
            times = [t for _, t in data]
            figures["normal_gap_s"] = statistics.median(b - a for a, b in itertools.pairwise(times[:i]))
            figures["break_gap_s"] = times[i] - times[i - 1]
        contributors = result.final["provenance"]["contributors"]
        figures["dropped_chars"] = contributors[-1]["repeat_dropped_chars"]
        figures["continued_chars"] = len(result.text) - at
    if len(result.records) == result.kind.calls:
        answering = result.records[-1]
        figures["answer_first_token_s"] = answering["first_token_s"]
        figures["answer_input_tokens"] = answering["input_tokens"]
        figures["answer_output_tokens"] = answering["output_tokens"]
        if len(result.records) == 2:
            primary = result.records[0]
            ended = datetime.fromisoformat(primary["started_at"]).timestamp() + primary["duration_s"]
            figures["handover_s"] = datetime.fromisoformat(answering["started_at"]).timestamp() - ended
            if figures.get("break_gap_s") is not None and answering["first_token_s"] is not None:
                told = figures["break_gap_s"] - figures["handover_s"] - answering["first_token_s"]
                figures["rest_of_gap_s"] = told
    return figures


# -- the run -------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], list[str], dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-continuation-"))
    settings = {
        "LLM_SERVER_LOCAL_MAX_TOKENS": str(args.local_max_tokens),
        "LLM_SERVER_RETRY_ATTEMPTS": "1",
        "LLM_SERVER_BREAKER_CONSECUTIVE_FAILURES": "1000000",
        "LLM_SERVER_BREAKER_MIN_CALLS": "1000000",
    }
    figures: dict[str, list[dict[str, Any]]] = {kind.name: [] for kind in KINDS}
    problems: list[str] = []
    samples: dict[str, Any] = {}
    with double_process() as double_url:
        with server_process(folder, {**server_settings(double_url), **settings}) as url:
            async with httpx.AsyncClient(base_url=url, timeout=120) as http:
                numbers = itertools.count(100)  # three digits: the same tokens in every question
                for kind in KINDS:  # warm up: connections, the local engine, the first builds
                    await send(http, kind, 0, next(numbers))
                for n in range(1, args.rounds + 1):
                    for kind in KINDS:
                        result = await send(http, kind, n, next(numbers))
                        figures[kind.name].append(measure(result))
                        problems.extend(result.problems)
                        if kind.name.endswith("_cut") and kind.name not in samples:
                            samples[kind.name] = result.text[len(SENT) :]
    if problems:  # the server's log and SQLite file, to look into
        samples["server_folder"] = str(folder)
    else:
        shutil.rmtree(folder)
    return figures, problems, samples


def _values(rows: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
    return [row[key] * scale for row in rows if row.get(key) is not None]


def cell(values: list[float], unit: str = "", digits: int = 0) -> str:
    if not values:
        return "n/a"
    median, low, high = statistics.median(values), min(values), max(values)
    if low == high:
        return f"{median:.{digits}f}{unit}"
    return f"{median:.{digits}f}{unit} ({low:.{digits}f} to {high:.{digits}f})"


def report(figures: dict[str, list[dict[str, Any]]], rounds: int, max_tokens: int) -> str:
    ms = 1000.0
    rc, rd = figures["remote_cut"], figures["remote_down"]
    lc, ld, lf = figures["local_cut"], figures["local_down"], figures["local_fresh"]

    def extra(cut: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[float]:
        return [
            c["answer_input_tokens"] - f["answer_input_tokens"]
            for c, f in zip(cut, fresh, strict=True)
            if c.get("answer_input_tokens") is not None and f.get("answer_input_tokens") is not None
        ]

    prompt_words = len(SENT.split()) + len(CONTINUE_PROMPT.split())
    lines = [
        f"median of {rounds} rounds (range); primary streams a word every {CHUNK_DELAY_S * ms:.0f} ms, "
        f"cut after {CUT_AT} of {len(WORDS)} words ({len(SENT)} characters); local max tokens {max_tokens}",
        "",
        "| latency, ms (client: arrival of SSE data events) | remote: gemini on the double, user turn | "
        "local: SmolLM2, prefill |",
        "|---|---|---|",
        f"| normal gap between two data events (primary streaming) | {cell(_values(rc, 'normal_gap_s', ms), '', 1)} "
        f"| {cell(_values(lc, 'normal_gap_s', ms), '', 1)} |",
        f"| first data event of the request (the primary's first word) | {cell(_values(rc, 'first_event_s', ms))} "
        f"| {cell(_values(lc, 'first_event_s', ms))} |",
        f"| **gap at the break** (last event of the primary to the first of the continuation) | "
        f"**{cell(_values(rc, 'break_gap_s', ms))}** | **{cell(_values(lc, 'break_gap_s', ms))}** |",
        f"| of which: primary's stream ended to continuation call started (records) | "
        f"{cell(_values(rc, 'handover_s', ms), '', 1)} | {cell(_values(lc, 'handover_s', ms), '', 1)} |",
        f"| of which: the continuation call's first token (its record) | "
        f"{cell(_values(rc, 'answer_first_token_s', ms))} | {cell(_values(lc, 'answer_first_token_s', ms))} |",
        f"| of which: the rest (the primary's pause after its last word, the continuation's start held back "
        f"by the overlap check, delivery) | {cell(_values(rc, 'rest_of_gap_s', ms))} | "
        f"{cell(_values(lc, 'rest_of_gap_s', ms))} |",
        f"| first data event of a request whose primary fails before any text (503, ordinary fallback) | "
        f"{cell(_values(rd, 'first_event_s', ms))} | {cell(_values(ld, 'first_event_s', ms))} |",
        f"| the same: the fallback call's first token (its record) | "
        f"{cell(_values(rd, 'answer_first_token_s', ms))} | {cell(_values(ld, 'answer_first_token_s', ms))} |",
        f"| first data event of the continuing model asked afresh alone (`llm_model=local`) | n/a | "
        f"{cell(_values(lf, 'first_event_s', ms))} |",
        "",
        "| tokens and characters | remote | local |",
        "|---|---|---|",
        f"| continuation call's input tokens | {cell(_values(rc, 'answer_input_tokens'))} | "
        f"{cell(_values(lc, 'answer_input_tokens'))} |",
        f"| the same model, the same question afresh (remote: after the 503; local: `llm_model=local`) | "
        f"{cell(_values(rd, 'answer_input_tokens'))} | {cell(_values(lf, 'answer_input_tokens'))} |",
        f"| **extra input tokens** (the answer so far + the instruction) | **{cell(extra(rc, rd))}** "
        f"(the double's word count: {prompt_words} expected) | **{cell(extra(lc, lf))}** |",
        f"| continuation call's output tokens | {cell(_values(rc, 'answer_output_tokens'))} | "
        f"{cell(_values(lc, 'answer_output_tokens'))} |",
        f"| characters the continuation added | {cell(_values(rc, 'continued_chars'))} | "
        f"{cell(_values(lc, 'continued_chars'))} |",
        f"| repeated characters dropped (`repeat_dropped_chars`) | {cell(_values(rc, 'dropped_chars'))} "
        f"(expected {len(REPEATED)}: {REPEATED!r}) | {cell(_values(lc, 'dropped_chars'))} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--local-max-tokens", type=int, default=32, help="LLM_SERVER_LOCAL_MAX_TOKENS")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    load_before = os.getloadavg()
    figures, problems, samples = asyncio.run(run(args))
    load_after = os.getloadavg()
    print(report(figures, args.rounds, args.local_max_tokens))
    print()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}, after: "
          f"{' '.join(f'{v:.2f}' for v in load_after)}")  # fmt: skip
    for name in ("remote_cut", "local_cut"):
        print(f"{name}, what the continuation added (round 1): {samples.get(name)!r}")
    if problems:
        print(f"\n{len(problems)} problems (server log in {samples['server_folder']}):")
        for problem in problems:
            print(f"- {problem}")
    else:
        print("all checks passed")
    if args.json is not None:
        args.json.write_text(json.dumps({"figures": figures, "problems": problems, "samples": samples}, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
