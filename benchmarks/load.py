"""Load: many concurrent clients mixing invoke, stream and batch on the ladder routes, against a
provider double that fails about 10% of requests at random; then checks that no client request
failed and that every LLM call was recorded exactly once.

    python benchmarks/load.py [--clients 200] [--duration 60] [--requests N] [--failure-rate 0.1]
                              [--seed 7] [--json figures.json]

Three processes: the provider double (``tests/helpers/provider_double.py`` under uvicorn), the whole
server (``python server.py``: one process, a real SQLite file, monitoring on) and this one, the
clients. The server's ``/fallback`` and ``/quality`` ladders are openai -> gemini -> gpt4 -> local,
the three remote rungs behind the double, so a failed remote attempt has two healthy remote
rungs behind it (the local model is the floor, too slow on 2 cores to take a share of the load).

Injected faults, drawn per request from (seed, model, question, attempt), so a run injects the
same faults whatever order its requests arrive in: 500, 503, 429 with ``Retry-After: 1``, and cut
streams (no finish reason). A cut is mid-answer for invoke and batch, where no text has reached
the client yet, and before any text for streams (after text, the contract is a 502 error event:
no server can take a half-sent answer over).

Each question carries a unique id (``[load <client>-<seq>.<item> <route> <kind>]``), sent also as
the request's ``metadata.load_id``, so the checks match call records to the double's log one to one:

- no client request failed: HTTP status not 200, an SSE ``error`` event, no ``end`` event, a
  transport error or timeout, or an answer that is not to its own question;
- for every question, the records (SQLite file, read after the server flushed and stopped) and
  the double's log agree attempt for attempt, per model and outcome: none missing, none extra,
  none duplicated; exactly one successful attempt, on the question's own ladder and request;
  each injected fault recorded with its cause (a 429 as ``rate_limited``...);
- invoke and batch responses name (``X-Served-By``) the model of that successful attempt;
- ``/monitoring/stats`` and ``/metrics`` agree with the file (calls, errors, fallback answers),
  and ``/metrics`` counts the HTTP answers the clients got, per route and status.

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp

from tests.helpers.processes import server_process, uvicorn_process
from tests.helpers.provider_double import Behaviour, Fault, ProviderDouble

REMOTE_MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-3.5-flash", "gpt4": "gpt-4o"}
LADDER = "openai,gemini,gpt4,local"
ROUTES = (("fallback", 0.7), ("quality", 0.3))
KINDS = (("invoke", 0.45), ("stream", 0.4), ("batch", 0.15))
BATCH_SIZE = 3
FAULT_KINDS = ("500", "503", "429", "cut")
EXPECTED_CAUSES = {  # how each injected fault must be recorded ("none": a complete answer)
    "500": "server_error",
    "503": "server_error",
    "429": "rate_limited",
    "cut_mid_stream": "truncated_stream",
    "cut_before_text": "truncated_stream",
    "none": "ok",
}
MARKER = re.compile(r"\[load (\S+) (\w+) (\w+)\]")
QUESTIONS = (
    "What is a circuit breaker?",
    "Why retry with jitter?",
    "What does a fallback ladder do?",
    "How long should a first-token deadline be?",
)


# -- the provider double, in a process of its own ----------------------------------------------
class RandomFaults:
    """Fails ``rate`` of one model's requests. Each request's draw is seeded by (seed, model,
    question id, attempt), not by arrival order, so a rerun injects the same faults."""

    def __init__(self, seed: int, model: str, rate: float):
        self.seed, self.model, self.rate = seed, model, rate
        self._attempts: Counter[str] = Counter()  # called on the double's event loop only

    def __call__(self, question: str) -> Fault | None:
        marker = MARKER.search(question)
        key = marker.group(1) if marker else question
        attempt = self._attempts[key]
        self._attempts[key] += 1
        draw = random.Random(f"{self.seed}|{self.model}|{key}|{attempt}")
        if draw.random() >= self.rate:
            return None
        kind = draw.choice(FAULT_KINDS)
        if kind == "429":
            return Fault(status=429, retry_after="1")
        if kind == "cut":  # before any text on a stream: the ladder can still move on
            return Fault(cut_after=0 if marker and marker.group(3) == "stream" else -1)
        return Fault(status=int(kind))


def faulty_double() -> ASGIApp:
    """The provider double with random faults on every remote model (uvicorn factory)."""
    seed = int(os.environ["LOAD_SEED"])
    rate = float(os.environ["LOAD_FAILURE_RATE"])
    delay = float(os.environ["LOAD_PROVIDER_DELAY_S"])
    double = ProviderDouble(keep_bodies=False)
    for model in REMOTE_MODELS.values():
        double.set(model, Behaviour(delay_s=delay, fault_for=RandomFaults(seed, model, rate)))
    return double.app


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used so far (Linux), to tell a busy server from a starved one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def double_process(seed: int, rate: float, delay_s: float) -> Iterator[tuple[str, int]]:
    env = {**os.environ, "LOAD_SEED": str(seed), "LOAD_FAILURE_RATE": str(rate), "LOAD_PROVIDER_DELAY_S": str(delay_s)}
    # Its keep-alive outlasts the SDKs' idle connections, so they never reuse one it is closing.
    with uvicorn_process(
        "benchmarks.load:faulty_double", env, ready_path="/double/served", backlog=4096, keep_alive_s=120
    ) as (url, pid):
        yield url, pid


def server_settings(double_url: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "sk-load-0123456789abcdef",
        "OPENAI_BASE_URL": f"{double_url}/v1",
        "GOOGLE_API_KEY": "AIzaLoad0123456789abcdef",
        "GOOGLE_GEMINI_BASE_URL": double_url,
        "LLM_SERVER_FALLBACK_LADDER": LADDER,
        "LLM_SERVER_LOG_LEVEL": "warning",
    }


# -- the clients ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One client request."""

    request_id: str
    route: str
    kind: str
    ids: list[str]
    seconds: float = 0.0
    first_event_s: float | None = None  # streams: time to the first data event
    status: int | None = None  # HTTP status; None after a transport error
    failure: str | None = None
    served_by: list[str] = field(default_factory=list)  # X-Served-By (invoke, batch)
    answers: list[str] = field(default_factory=list)  # one per question, in order


class Plan:
    """When each client stops: after ``duration_s``, or once it has sent its share of ``requests``
    (a fixed share, so a bounded run asks the same questions, and draws the same faults, every time)."""

    def __init__(self, duration_s: float | None, requests: int | None, clients: int):
        self.ends_at = None if duration_s is None else time.monotonic() + duration_s
        self.requests, self.clients = requests, clients

    def another(self, client: int, sent: int) -> bool:
        if self.ends_at is not None and time.monotonic() >= self.ends_at:
            return False
        if self.requests is None:
            return True
        share = self.requests // self.clients + (1 if client < self.requests % self.clients else 0)
        return sent < share


def _question(load_id: str, route: str, kind: str, rng: random.Random) -> str:
    return f"{rng.choice(QUESTIONS)} [load {load_id} {route} {kind}]"


def _output(response: httpx.Response, outcome: Outcome) -> Any:
    """The response's output, or None with the failure noted on ``outcome``."""
    outcome.status = response.status_code
    if response.status_code != 200:
        outcome.failure = f"HTTP {response.status_code}: {response.text[:300]}"
        return None
    outcome.served_by = [m for m in response.headers.get("x-served-by", "").split(",") if m]
    return response.json().get("output")


async def _invoke(http: httpx.AsyncClient, outcome: Outcome, questions: list[str]) -> None:
    body = {"input": {"question": questions[0]}, "config": {"metadata": {"load_id": outcome.ids[0]}}}
    response = await http.post(f"/{outcome.route}/invoke", json=body, headers={"x-request-id": outcome.request_id})
    answer = _output(response, outcome)
    if outcome.failure:
        return
    if not isinstance(answer, str):
        outcome.failure = f"not an answer: {response.text[:300]}"
        return
    outcome.answers = [answer]


async def _batch(http: httpx.AsyncClient, outcome: Outcome, questions: list[str]) -> None:
    body = {
        "inputs": [{"question": q} for q in questions],
        "config": [{"metadata": {"load_id": load_id}} for load_id in outcome.ids],
    }
    response = await http.post(f"/{outcome.route}/batch", json=body, headers={"x-request-id": outcome.request_id})
    answers = _output(response, outcome)
    if outcome.failure:
        return
    if not (
        isinstance(answers, list) and len(answers) == len(outcome.ids) and all(isinstance(a, str) for a in answers)
    ):
        outcome.failure = f"not one answer per question: {response.text[:300]}"
        return
    outcome.answers = answers


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """A streamed response's server-sent events as they arrive: (event, data), a last unfinished
    one included."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and (event or data):
            yield event or "message", "\n".join(data)
            event, data = None, []
    if event or data:
        yield event or "message", "\n".join(data)


async def _stream(http: httpx.AsyncClient, outcome: Outcome, questions: list[str], began: float) -> None:
    body = {"input": {"question": questions[0]}, "config": {"metadata": {"load_id": outcome.ids[0]}}}
    headers = {"x-request-id": outcome.request_id}
    events: list[tuple[str, str]] = []
    async with http.stream("POST", f"/{outcome.route}/stream", json=body, headers=headers) as response:
        outcome.status = response.status_code
        if response.status_code != 200:
            await response.aread()
            outcome.failure = f"HTTP {response.status_code}: {response.text[:300]}"
            return
        async for event in sse_events(response):
            if event[0] == "data" and outcome.first_event_s is None:
                outcome.first_event_s = time.perf_counter() - began
            events.append(event)
    errors = [payload for name, payload in events if name == "error"]
    if errors:
        outcome.failure = f"error event: {errors[0][:300]}"
    elif not events or events[-1][0] != "end":
        outcome.failure = f"stream ended without an end event after {len(events)} events"
    else:
        outcome.answers = ["".join(json.loads(payload) for name, payload in events if name == "data")]


async def client(number: int, http: httpx.AsyncClient, plan: Plan, seed: int, outcomes: list[Outcome]) -> None:
    rng = random.Random(f"{seed}|client|{number}")
    routes, route_weights = zip(*ROUTES, strict=True)
    kinds, kind_weights = zip(*KINDS, strict=True)
    sequence = 0
    while plan.another(number, sequence):
        route = rng.choices(routes, route_weights)[0]
        kind = rng.choices(kinds, kind_weights)[0]
        request_id = f"load-{number}-{sequence}"
        ids = [f"{number}-{sequence}.{item}" for item in range(BATCH_SIZE if kind == "batch" else 1)]
        sequence += 1
        outcome = Outcome(request_id, route, kind, ids)
        questions = [_question(load_id, route, kind, rng) for load_id in ids]
        began = time.perf_counter()
        try:
            if kind == "invoke":
                await _invoke(http, outcome, questions)
            elif kind == "batch":
                await _batch(http, outcome, questions)
            else:
                await _stream(http, outcome, questions, began)
        except httpx.HTTPError as exc:
            outcome.failure = f"transport: {type(exc).__name__}: {exc}"
        outcome.seconds = time.perf_counter() - began
        outcomes.append(outcome)


async def run_clients(url: str, clients: int, plan: Plan, seed: int, timeout_s: float) -> tuple[list[Outcome], float]:
    outcomes: list[Outcome] = []
    # httpx's default idle expiry (5 s): the server keeps connections longer (LLM_SERVER_KEEP_ALIVE_S), so
    # it never closes one under a request (with uvicorn's 5 s default: ReadError in 2 of 1455 requests).
    limits = httpx.Limits(max_connections=clients + 16, max_keepalive_connections=clients + 16)
    timeout = httpx.Timeout(timeout_s, connect=30)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(n, http, plan, seed, outcomes) for n in range(clients)))
        return outcomes, time.perf_counter() - started


# -- the checks ----------------------------------------------------------------------------------
def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def read_records(db_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(db_path)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            "SELECT run_id, request_id, ladder, rung, model, outcome, cause, metadata FROM calls ORDER BY started_ts"
        ).fetchall()
    finally:
        db.close()
    records = []
    for row in rows:
        record = dict(row)
        record["load_id"] = json.loads(record.pop("metadata")).get("client", {}).get("load_id")  # the client's own
        records.append(record)
    return records


@dataclass
class Audit:
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def expect(self, holds: bool, problem: str) -> None:
        if not holds:
            self.problems.append(problem)


def _attempt_key(model: str, ok: bool) -> str:
    return f"{model}:{'ok' if ok else 'error'}"


def audit(
    outcomes: list[Outcome],
    records: list[dict[str, Any]],
    served: list[dict[str, Any]],
    stats: dict[str, Any],
    metrics: str,
) -> Audit:
    """Every check over plain data, so a test can hand it a planted fault."""
    result = Audit()
    expect = result.expect
    remote = set(REMOTE_MODELS.values())

    failures = [o for o in outcomes if o.failure]
    for o in failures[:20]:
        result.problems.append(f"client request {o.request_id} ({o.route} {o.kind}) failed: {o.failure}")
    if len(failures) > 20:
        result.problems.append(f"... and {len(failures) - 20} more failed client requests")
    result.figures["client_failures"] = dict(Counter(o.failure.split(":")[0] for o in failures if o.failure))

    issued = {load_id: o for o in outcomes for load_id in o.ids}
    by_id_records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        load_id = record["load_id"]
        if load_id not in issued:
            result.problems.append(f"record {record['run_id']} has no question of this run (load_id {load_id!r})")
            continue
        by_id_records[load_id].append(record)
    by_id_served: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in served:
        marker = MARKER.search(request["question"])
        if marker is None or marker.group(1) not in issued:
            result.problems.append(f"the double got a request for no question of this run: {request['question']!r}")
            continue
        by_id_served[marker.group(1)].append(request)

    # Client requests that failed stop at the client check; the rest must match one to one.
    for load_id, o in issued.items():
        mine = by_id_records.get(load_id, [])
        recorded = Counter(_attempt_key(r["model"], r["outcome"] == "ok") for r in mine if r["model"] in remote)
        sent = Counter(
            _attempt_key(s["model"], s["status"] == 200 and s["completed"]) for s in by_id_served.get(load_id, [])
        )
        if recorded != sent:
            missing, extra = sent - recorded, recorded - sent
            expect(False, f"question {load_id}: the double's log and the records differ: "
                          f"not recorded {dict(missing)}, recorded without a request {dict(extra)}")  # fmt: skip
        if o.failure:
            continue
        answers = [r for r in mine if r["outcome"] == "ok"]
        expect(len(answers) == 1, f"question {load_id}: {len(answers)} successful attempts recorded, not 1")
        answer = o.answers[o.ids.index(load_id)]
        # The double's answers quote the question; the local model's cannot be checked that way.
        if answers and answers[0]["model"] in remote:
            expect(f"[load {load_id} " in answer, f"question {load_id} got another question's answer: {answer!r}")
        expect(bool(answer.strip()), f"question {load_id}: empty answer")
        wrong = [r["run_id"] for r in mine if r["ladder"] != o.route or r["request_id"] != o.request_id]
        expect(not wrong, f"question {load_id}: records {wrong} name another ladder or request")

    for o in outcomes:
        if o.failure or o.kind == "stream":
            continue
        answered = sorted(r["model"] for i in o.ids for r in by_id_records.get(i, []) if r["outcome"] == "ok")
        expect(
            sorted(o.served_by) == answered, f"request {o.request_id}: X-Served-By {o.served_by}, records {answered}"
        )

    for fault, found in causes_by_fault(records, served).items():
        expected = EXPECTED_CAUSES.get(fault)
        expect(expected is None or set(found) == {expected}, f"faults {fault} were recorded as {dict(found)}")

    ok = [r for r in records if r["outcome"] == "ok"]
    errors = [r for r in records if r["outcome"] == "error"]
    fallbacks = [r for r in ok if (r["rung"] or 0) > 0]
    totals = stats.get("totals", {})
    expect(
        totals.get("calls") == len(records),
        f"/monitoring/stats counts {totals.get('calls')} calls, the file {len(records)}",
    )
    expect(
        totals.get("errors") == len(errors),
        f"/monitoring/stats counts {totals.get('errors')} errors, the file {len(errors)}",
    )
    stated = totals.get("fallback_answers")
    expect(stated == len(fallbacks), f"/monitoring/stats counts {stated} fallback answers, the file {len(fallbacks)}")
    for name, want in (
        ("llm_calls_total", len(records)),
        ("llm_errors_total", len(errors)),
        ("llm_fallback_answers_total", len(fallbacks)),
    ):
        got = metric_sum(metrics, name)
        expect(got == want, f"/metrics {name} is {got:g}, the file has {want}")
    answered = Counter((f"/{o.route}/{o.kind}", str(o.status)) for o in outcomes if o.status is not None)
    counted = Counter(
        {
            (labels["route"], labels["status"]): value
            for labels, value in metric_samples(metrics, "http_requests_total")
            if labels["route"].rsplit("/", 1)[-1] in ("invoke", "stream", "batch")
        }
    )
    expect(counted == answered, f"/metrics counts HTTP answers {dict(counted)}, the clients got {dict(answered)}")

    result.figures.update(_figures(outcomes, records, served, metrics))
    return result


def causes_by_fault(records: list[dict[str, Any]], served: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """The causes recorded for each kind of injected fault ("none": a complete answer)."""
    # The n-th record of a question on a model (records come oldest first) is the n-th request
    # the double got for it.
    requests: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for request in served:
        marker = MARKER.search(request["question"])
        requests[(marker.group(1) if marker else "", request["model"])].append(request)
    seen: Counter[tuple[str, str]] = Counter()
    causes: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        key = (record["load_id"], record["model"])
        position = seen[key]
        seen[key] += 1
        if position < len(requests.get(key, [])):
            request = requests[key][position]
            fault = request["fault"] or ("none" if request["completed"] else "none, hung up on")
            causes[fault][record["cause"] or "ok"] += 1
    return causes


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if len(values) < 2:
        only = values[0] if values else None
        return {"p50": only, "p95": only, "p99": only, "max": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def _figures(
    outcomes: list[Outcome], records: list[dict[str, Any]], served: list[dict[str, Any]], metrics: str
) -> dict[str, Any]:
    kinds = {kind: [o for o in outcomes if o.kind == kind] for kind, _ in KINDS}
    ok = [r for r in records if r["outcome"] == "ok"]
    attempts_per_rung: Counter[tuple[str | None, str]] = Counter((r["load_id"], r["model"]) for r in records)
    opened = sum(
        v for labels, v in metric_samples(metrics, "circuit_breaker_transitions_total") if labels["to"] == "open"
    )
    return {
        "requests": {kind: len(group) for kind, group in kinds.items()},
        "requests_by_route": dict(Counter(f"/{o.route}/{o.kind}" for o in outcomes)),
        "questions": sum(len(o.ids) for o in outcomes),
        "latency_s": {kind: _percentiles([o.seconds for o in group]) for kind, group in kinds.items()},
        "stream_first_event_s": _percentiles([o.first_event_s for o in kinds["stream"] if o.first_event_s]),
        "double_requests": len(served),
        "injected_faults": dict(Counter(s["fault"] for s in served if s["fault"])),
        "records": len(records),
        "record_outcomes": dict(Counter(r["outcome"] for r in records)),
        "error_causes": dict(Counter(r["cause"] for r in records if r["outcome"] == "error")),
        "causes_by_fault": {fault: dict(found) for fault, found in sorted(causes_by_fault(records, served).items())},
        "answers_by_rung": {str(rung): n for rung, n in sorted(Counter(r["rung"] for r in ok).items())},
        "answers_by_model": dict(Counter(r["model"] for r in ok)),
        "fallback_answers": sum(1 for r in ok if (r["rung"] or 0) > 0),
        "same_rung_retries": sum(n - 1 for n in attempts_per_rung.values()),
        "breaker_openings": opened,
    }


# -- the report ----------------------------------------------------------------------------------
def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def report(figures: dict[str, Any], problems: list[str]) -> str:
    ms = _ms
    wall = figures["wall_s"]
    lines = [
        f"{figures['clients']} clients for {wall:.1f} s (seed {figures['seed']}, "
        f"failure rate {figures['failure_rate']:g})",
        "",
        f"{'kind':<8}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    for kind, count in figures["requests"].items():
        lat = figures["latency_s"][kind]
        lines.append(f"{kind:<8}{count:>10}{count / wall:>9.1f}{ms(lat['p50']):>9}{ms(lat['p95']):>9}"
                     f"{ms(lat['p99']):>9}{ms(lat['max']):>9}")  # fmt: skip
    total = sum(figures["requests"].values())
    first = figures["stream_first_event_s"]
    lines += [
        f"{'all':<8}{total:>10}{total / wall:>9.1f}",
        "",
        f"stream first data event: p50 {ms(first['p50'])} ms, p99 {ms(first['p99'])} ms",
        f"questions answered: {figures['questions']} ({figures['questions'] / wall:.1f}/s)",
        f"requests at the double: {figures['double_requests']}; injected faults: "
        f"{sum(figures['injected_faults'].values())} {figures['injected_faults']}",
        f"call records: {figures['records']} {figures['record_outcomes']}; error causes {figures['error_causes']}",
        f"recorded cause of each injected fault: {figures['causes_by_fault']}",
        f"answers by rung: {figures['answers_by_rung']}; fallback answers: {figures['fallback_answers']}; "
        f"same-rung retries: {figures['same_rung_retries']}; breaker openings: {figures['breaker_openings']}",
        f"alerts fired: {figures['alerts_fired']}",
        f"CPU used during the load, in cores: {figures['cpu_cores']}; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in figures['load_average'])} ({os.cpu_count()} cores)",
        f"client failures: {sum(figures['client_failures'].values())} {figures['client_failures']}",
        "",
    ]
    if problems:
        lines += [
            "CHECKS FAILED:",
            *(f"  - {p}" for p in problems),
            f"server log and records: {figures['server_folder']}",
        ]
    else:
        lines.append("all checks passed")
    return "\n".join(lines)


async def measure(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    with double_process(args.seed, args.failure_rate, args.provider_delay) as (double_url, double_pid):
        with server_process(folder, server_settings(double_url)) as url:
            server_pid = httpx.get(f"{url}/health", timeout=10).json()["process"]
            pids = {"server": server_pid, "double": double_pid, "clients": os.getpid()}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            plan = Plan(args.duration, args.requests, args.clients)
            outcomes, wall = await run_clients(url, args.clients, plan, args.seed, args.timeout)
            cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
            async with httpx.AsyncClient(base_url=url, timeout=120) as http:
                metrics = (await http.get("/metrics")).text
                stats = (await http.get("/monitoring/stats")).json()
                alerts = (await http.get("/monitoring/alerts", params={"limit": 1000})).json()["history"]
        # The server flushed its records when it stopped; the double is still up to hand its log.
        served = httpx.get(f"{double_url}/double/served", timeout=120).json()["served"]
    records = read_records(folder / "monitoring.sqlite3")
    result = audit(outcomes, records, served, stats, metrics)
    if not result.problems:
        shutil.rmtree(folder)
    figures = {
        "clients": args.clients,
        "seed": args.seed,
        "failure_rate": args.failure_rate,
        "wall_s": wall,
        "cpu_cores": {
            name: None if before is None or cpu_after[name] is None else round((cpu_after[name] - before) / wall, 2)
            for name, before in cpu_before.items()
        },
        "load_average": os.getloadavg(),
        **result.figures,
        "alerts_fired": dict(Counter(a["key"] for a in alerts if a["state"] == "firing")),
        "problems": result.problems,
        # The server's log and SQLite file are kept to look into when a check failed.
        "server_folder": str(folder) if result.problems else None,
    }
    return figures, result.problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (0: until --requests)")
    parser.add_argument("--requests", type=int, default=None, help="stop after this many client requests")
    parser.add_argument("--failure-rate", type=float, default=0.1, help="share of provider requests that fail")
    parser.add_argument("--provider-delay", type=float, default=0.05, help="seconds the double takes to answer")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request, seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.duration:
        args.duration = None
    if args.duration is None and args.requests is None:
        parser.error("give --duration or --requests")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    figures, problems = asyncio.run(measure(args))
    print(report(figures, problems))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
