"""Balancing deployments: what a second deployment of an alternative costs the server per request,
whether the two share the traffic evenly, and what a request sees while one of the two is down,
through the real server over HTTP.

    .venv/bin/python benchmarks/balancing.py [--rounds 6] [--requests 300] [--clients 16]
                                             [--after 40] [--quiet-wait 120] [--skip-cpu] [--skip-outage]
                                             [--json F]

Processes of their own: two provider doubles (``tests/helpers/provider_double.py`` under uvicorn,
instant answers; a control route switches one to 503s or to hanging), the server
(``python server.py``, an open server, monitoring on) and this one, the clients. The server's
models file (``LLM_SERVER_MODELS_FILE``) gives the ``openai`` alternative one deployment (``a``)
or two (``a`` and ``b``, weight 1 each, the default ``weighted`` balancing), and makes the
``fallback`` ladder openai -> local. The OpenAI-compatible door is asked through the official
``openai`` SDK (``model="fallback"``, SDK retries off), the LangServe route (``/fallback/invoke``)
through httpx.

1. Server CPU per request (from ``/proc`` of the server process only, not the clients' nor the
   doubles'): the one-deployment server and the two-deployment server, both up at once, the same
   requests from ``--clients`` connections, both doors; rounds of the four kinds alternate and
   the figure per kind is the median of its rounds. The doubles' request counts give the split.
2. Outage of ``a`` on a fresh two-deployment server: after a healthy baseline, ``a`` answers 503
   (or hangs: its answer comes after 30 s, so the server's own timeouts fire, set here to 1 s:
   ``LLM_SERVER_PRIMARY_TIMEOUT_S``, ``LLM_SERVER_PROVIDER_TIMEOUT_S``,
   ``LLM_SERVER_FIRST_TOKEN_TIMEOUT_S``), and requests go on from that moment, one at a time or
   from ``--clients`` at once, until ``a``'s breaker has been open for ``--after`` requests (per
   client). Breaker and retry settings are the server's defaults. Counted: failed requests (any
   status but 200), requests and tries on ``a`` until ``GET /monitoring/breakers`` shows ``a``
   open, latency until then (tries that reached ``a`` apart from those that did not) and after.
   One at a time, each request is followed by a read of the doubles' counts (which deployments it
   tried) and of the breaker; from ``--clients`` at once, the breaker is read every 50 ms. The
   healthy baseline is sent the same way, on the same server, just before the outage.

The machine is shared (other people's test suites): before each CPU round and each outage
scenario the script waits (at most ``--quiet-wait`` seconds) until the rest of the machine uses
under a quarter of a core, and runs a round or scenario again (at most twice) when it used more
meanwhile; what the rest of the machine used is printed with every figure.

Exit status 1 when a check fails (a failed request, an uneven split, a breaker that did not
open, a try retried on ``a`` or that waited for a backoff).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import openai
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from benchmarks.load import cpu_seconds
from tests.helpers.processes import server_process, uvicorn_process
from tests.helpers.provider_double import Behaviour, ProviderDouble

MODEL = "gpt-4o-mini"
QUESTION = "What is a circuit breaker? #{n}"
TIMEOUT_S = "1"  # the server's primary, provider and first-token timeouts, for the hanging case
HANG_S = 30.0
QUIET_CORES = 0.25  # the rest of the machine counts as idle under this share of a core
Request_ = Callable[[int], Awaitable[int]]  # sends request number n, returns the HTTP status


# -- the doubles, each in a process of its own ---------------------------------------------------
def balancing_double() -> ASGIApp:
    """The provider double (uvicorn factory): instant answers; ``POST /double/behaviour`` with
    ``{"fail_status": 503}`` or ``{"delay_s": 30}`` (``{}``: healthy again) changes how it answers,
    ``GET /double/count`` says how many requests came and how many were answered."""
    double = ProviderDouble(keep_bodies=False)
    double.set(MODEL, Behaviour())

    async def behave(request: Request) -> Response:
        asked = await request.json()
        double.set(MODEL, Behaviour(fail_status=asked.get("fail_status"), delay_s=float(asked.get("delay_s", 0.0))))
        return JSONResponse({"behaviour": asked})

    async def count(request: Request) -> Response:
        with double._lock:
            statuses = Counter(s.status for s in double.served)
        return JSONResponse({"requests": sum(statuses.values()), "answered": statuses[200]})

    double.app.add_route("/double/behaviour", behave, methods=["POST"])
    double.app.add_route("/double/count", count, methods=["GET"])
    return double.app


@contextmanager
def doubles() -> Iterator[dict[str, str]]:
    """Two doubles, ``a`` and ``b``; yields their URLs."""
    with ExitStack() as stack:
        urls = {}
        for name in ("a", "b"):
            url, _ = stack.enter_context(
                uvicorn_process(
                    "benchmarks.balancing:balancing_double",
                    dict(os.environ),
                    ready_path="/double/served",
                    backlog=1024,
                    keep_alive_s=120,
                )
            )
            urls[name] = url
        yield urls


def counts(urls: dict[str, str]) -> dict[str, int]:
    """Requests each double has had so far."""
    return {name: httpx.get(f"{url}/double/count", timeout=10).json()["requests"] for name, url in urls.items()}


def behave(url: str, **behaviour: float) -> None:
    httpx.post(f"{url}/double/behaviour", json=behaviour, timeout=10).raise_for_status()


# -- the server ----------------------------------------------------------------------------------
def models_file(folder: Path, urls: dict[str, str], names: tuple[str, ...]) -> Path:
    lines = ["[ladders]", 'fallback = ["openai", "local"]', ""]
    for name in names:
        lines += [
            "[[deployments]]",
            'alternative = "openai"',
            f'name = "{name}"',
            'kind = "openai"',
            f'base_url = "{urls[name]}/v1"',
            f'api_key_env = "KEY_{name.upper()}"',
            f'model = "{MODEL}"',
            "",
        ]
    path = folder / "models.toml"
    path.write_text("\n".join(lines))
    return path


@contextmanager
def server(urls: dict[str, str], names: tuple[str, ...]) -> Iterator[tuple[str, int]]:
    """The whole server with ``names`` serving the ``openai`` alternative; yields its URL and the
    process id that answers (its CPU is the figure)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-balancing-"))
    settings = {
        "LLM_SERVER_MODELS_FILE": str(models_file(folder, urls, names)),
        "KEY_A": "sk-balancing-a-0123456789",
        "KEY_B": "sk-balancing-b-0123456789",
        "LLM_SERVER_LOG_LEVEL": "warning",
        "LLM_SERVER_PRIMARY_TIMEOUT_S": TIMEOUT_S,
        "LLM_SERVER_PROVIDER_TIMEOUT_S": TIMEOUT_S,
        "LLM_SERVER_FIRST_TOKEN_TIMEOUT_S": TIMEOUT_S,
    }
    try:
        with server_process(folder, settings) as url:
            pid = httpx.get(f"{url}/health", timeout=10).json()["process"]
            yield url, pid
    except RuntimeError:  # it did not start: say why
        log = folder / "server.log"
        print(log.read_text()[-3000:] if log.exists() else "(no server log)", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Clients:
    """Both doors of one server: the OpenAI SDK on ``/v1/chat/completions`` and httpx on
    ``/fallback/invoke``; each request returns its HTTP status (0: no answer)."""

    def __init__(self, url: str, connections: int):
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(base_url=url, timeout=60, limits=limits)
        self.sdk = openai.AsyncOpenAI(
            base_url=f"{url}/v1",
            api_key="open",
            http_client=httpx.AsyncClient(timeout=60, limits=limits),
            max_retries=0,
        )

    async def door(self, n: int) -> int:
        messages: Any = [{"role": "user", "content": QUESTION.format(n=n)}]
        try:
            await self.sdk.chat.completions.create(model="fallback", messages=messages)
        except openai.APIStatusError as error:
            return error.status_code
        except openai.APIError:
            return 0
        return 200

    async def langserve(self, n: int) -> int:
        try:
            response = await self.http.post("/fallback/invoke", json={"input": {"question": QUESTION.format(n=n)}})
        except httpx.TransportError:
            return 0
        return response.status_code

    def of(self, door: str) -> Request_:
        return self.door if door == "door" else self.langserve

    async def breaker(self, name: str) -> dict[str, Any] | None:
        response = await self.http.get("/monitoring/breakers")
        response.raise_for_status()
        return next((b for b in response.json()["breakers"] if b["endpoint"] == name), None)

    async def close(self) -> None:
        await self.sdk.close()
        await self.http.aclose()


DOORS = {"door": "`/v1/chat/completions` (openai SDK)", "langserve": "`/fallback/invoke` (httpx)"}


# -- 1: server CPU per request -------------------------------------------------------------------
# -- other people's load -------------------------------------------------------------------------
def _busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    """CPU seconds of this process and every process below it (doubles, servers, engines)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    mine, grew = {os.getpid()}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= below
        grew = bool(below)
    return sum(cpu_seconds(pid) or 0.0 for pid in mine)


class Others:
    """CPU the rest of the machine (other people's tests, type checks) used, in cores, between
    ``start`` and ``cores``."""

    def start(self) -> None:
        self._at, self._busy, self._own = time.monotonic(), _busy_s(), _own_s()

    def cores(self) -> float:
        wall = time.monotonic() - self._at
        return max(0.0, (_busy_s() - self._busy) - (_own_s() - self._own)) / max(wall, 1e-6)


async def quiet(limit: float, waited: list[float], threshold: float = QUIET_CORES) -> None:
    """Wait (at most ``limit`` seconds) until the rest of the machine used under ``threshold`` of
    a core for two seconds; adds the wait to ``waited``."""
    began = time.monotonic()
    others = Others()
    while True:
        others.start()
        await asyncio.sleep(2)
        if others.cores() < threshold or time.monotonic() - began > limit:
            waited.append(time.monotonic() - began - 2)
            return


# -- 1: server CPU per request -------------------------------------------------------------------
@dataclass
class Round:
    cpu_ms: float
    rate: float  # requests per second
    split: dict[str, int]
    failed: int
    others: float  # cores the rest of the machine used meanwhile
    redone: int = 0  # times the round was run again because the rest of the machine was busy


async def cpu_round(
    request: Request_, requests: int, clients: int, pid: int, start: int, urls: dict[str, str]
) -> Round:
    queue = iter(range(start, start + requests))
    statuses: Counter[int] = Counter()

    async def client() -> None:
        for n in queue:
            statuses[await request(n)] += 1

    seen = await asyncio.to_thread(counts, urls)
    others = Others()
    others.start()
    before, began = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    after, wall = cpu_seconds(pid), time.perf_counter() - began
    busy = others.cores()
    now = await asyncio.to_thread(counts, urls)
    assert before is not None and after is not None
    split = {name: now[name] - seen[name] for name in urls}
    return Round((after - before) / requests * 1000, requests / wall, split, requests - statuses[200], busy)


async def measure_cpu(args: argparse.Namespace, urls: dict[str, str], waited: list[float]) -> dict[str, list[Round]]:
    with server(urls, ("a",)) as (one_url, one_pid), server(urls, ("a", "b")) as (two_url, two_pid):
        one, two = Clients(one_url, args.clients), Clients(two_url, args.clients)
        kinds = {
            (door, side): (clients.of(door), pid)
            for door in DOORS
            for side, clients, pid in (("one", one, one_pid), ("two", two, two_pid))
        }
        for request, pid in kinds.values():  # warm up: connections, caches, the first build
            await cpu_round(request, args.clients * 4, args.clients, pid, 0, urls)
        figures: dict[tuple[str, str], list[Round]] = {kind: [] for kind in kinds}
        n = 1000
        for _ in range(args.rounds):
            for kind, (request, pid) in kinds.items():
                # A round during which the rest of the machine took more than a sliver is run
                # again once it is quiet (at most twice), so other people's tests weigh on no side.
                for redone in range(3):
                    await quiet(args.quiet_wait, waited)
                    measured = await cpu_round(request, args.requests, args.clients, pid, n, urls)
                    n += args.requests
                    measured.redone = redone
                    if measured.others < QUIET_CORES:
                        break
                figures[kind].append(measured)
        await one.close()
        await two.close()
    return {f"{door}/{side}": rounds for (door, side), rounds in figures.items()}


def cpu_report(figures: dict[str, list[Round]], args: argparse.Namespace, problems: list[str]) -> list[str]:
    lines = [
        f"Server CPU per request, median of {args.rounds} rounds of {args.requests} requests, "
        f"{args.clients} connections:",
        "",
        "| door | one deployment | two deployments | two / one | median ratio of paired rounds "
        "| req/s one / two | split a / b (all rounds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for door, label in DOORS.items():
        one, two = figures[f"{door}/one"], figures[f"{door}/two"]
        one_ms = statistics.median(r.cpu_ms for r in one)
        two_ms = statistics.median(r.cpu_ms for r in two)
        paired = statistics.median(b.cpu_ms / a.cpu_ms for a, b in zip(one, two, strict=True))
        split = Counter[str]()
        for r in two:
            split.update(r.split)
        lines.append(
            f"| {label} | {one_ms:.2f} ms | {two_ms:.2f} ms | **{two_ms / one_ms:.3f}** | {paired:.3f} "
            f"| {statistics.median(r.rate for r in one):.0f} / {statistics.median(r.rate for r in two):.0f} "
            f"| {split['a']} / {split['b']} |"
        )
        for side, rounds in (("one", one), ("two", two)):
            failed = sum(r.failed for r in rounds)
            if failed:
                problems.append(f"{label}, {side} deployment(s): {failed} requests failed")
        for r in one:
            if r.split["b"] or r.split["a"] != args.requests:
                problems.append(f"{label}, one deployment: the doubles got {r.split} for {args.requests} requests")
        for r in two:
            if abs(r.split["a"] - r.split["b"]) > 1 or r.split["a"] + r.split["b"] != args.requests:
                problems.append(f"{label}, two deployments: uneven split {r.split} of {args.requests} requests")
    lines.append("")
    for kind, rounds in figures.items():
        per_round = " ".join(f"{r.cpu_ms:.2f}" for r in rounds)
        splits = " ".join(f"{r.split['a']}/{r.split['b']}" for r in rounds)
        others = " ".join(f"{r.others:.2f}" for r in rounds)
        redone = sum(r.redone for r in rounds)
        lines.append(
            f"- {kind}: CPU ms per round {per_round}; split a/b per round {splits}; the rest of the machine, "
            f"cores, per round {others}; rounds run again because it was busy: {redone}"
        )
    return lines


# -- 2: outage of one of the two deployments ----------------------------------------------------
@dataclass
class Sent:
    n: int
    began: float  # monotonic, this process
    seconds: float
    status: int
    on_a: int | None = None  # tries the request made on a and on b (sequential runs only)
    on_b: int | None = None


@dataclass
class Outage:
    fault: str  # "503" or "hang"
    clients: int
    door: str
    baseline: list[Sent] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    opened_at: float | None = None  # monotonic, this process (from the breaker's retry_in_s)
    open_reason: str = ""
    tries_on_a_until_open: int | None = None
    tries_on_a_after_open: int | None = None
    tries_on_a_total: int = 0
    tries_on_b_total: int = 0
    causes: dict[str, int] = field(default_factory=dict)
    breaker_after: dict[str, Any] | None = None
    others: float = 0.0  # cores the rest of the machine used during the outage
    redone: int = 0  # times the scenario was run again because the rest of the machine was busy

    @property
    def name(self) -> str:
        how = "one at a time" if self.clients == 1 else f"{self.clients} at once"
        return f"`a` {'answers 503' if self.fault == '503' else 'hangs'}, {how}, {DOORS[self.door].split(' ')[0]}"

    def until_open(self) -> list[Sent]:
        return [s for s in self.sent if self.opened_at is None or s.began < self.opened_at]

    def after_open(self) -> list[Sent]:
        return [] if self.opened_at is None else [s for s in self.sent if s.began >= self.opened_at]


async def _send(request: Request_, n: int) -> Sent:
    began = time.monotonic()
    status = await request(n)
    return Sent(n, began, time.monotonic() - began, status)


def _opened_at(breaker: dict[str, Any] | None, now: float, open_s: float) -> float | None:
    if breaker is None or breaker["state"] != "open":
        return None
    return now - (open_s - breaker["retry_in_s"])


@dataclass
class Phase:
    """One run of requests on a scenario's server (the baseline, or from the outage's start), with
    the doubles' counts and ``a``'s breaker read the same way in both."""

    sent: list[Sent] = field(default_factory=list)
    opened_at: float | None = None
    reason: str = ""
    tries_on_a_until_open: int | None = None

    def after_open(self) -> int:
        return 0 if self.opened_at is None else sum(1 for s in self.sent if s.began >= self.opened_at)


class Scenario:
    """The clients of one outage scenario: the door, the server's breakers and the doubles' counts."""

    def __init__(self, url: str, clients: int, door: str, urls: dict[str, str]):
        self.clients, self.urls = clients, urls
        self.http = Clients(url, clients)
        self.request = self.http.of(door)
        self.doubles = httpx.AsyncClient(timeout=10)
        self.n = 0
        self.open_s = 30.0

    async def tally(self) -> dict[str, int]:
        """Requests each double has had so far."""
        names = list(self.urls)
        answers = await asyncio.gather(*(self.doubles.get(f"{self.urls[name]}/double/count") for name in names))
        return {name: answer.json()["requests"] for name, answer in zip(names, answers, strict=True)}

    async def look(self, phase: Phase, start: dict[str, int]) -> None:
        """Read ``a``'s breaker; the first time it is open, note when it opened and why."""
        if phase.opened_at is not None:
            await self.http.breaker("a")  # read all the same, so every request is followed alike
            return
        breaker = await self.http.breaker("a")
        opened = _opened_at(breaker, time.monotonic(), self.open_s)
        if opened is not None and breaker is not None:
            phase.opened_at, phase.reason = opened, breaker["reason"]
            phase.tries_on_a_until_open = (await self.tally())["a"] - start["a"]

    async def run(self, stop: Callable[[Phase], bool], limit_s: float) -> Phase:
        """Requests until ``stop`` says enough (or ``limit_s`` passed): one at a time, each followed
        by the doubles' counts (which deployments it tried) and a read of the breaker; or from
        ``clients`` at once, the breaker read every 50 ms meanwhile."""
        phase, start, began = Phase(), await self.tally(), time.monotonic()
        if self.clients == 1:
            seen = start
            while not stop(phase) and time.monotonic() - began < limit_s:
                self.n += 1
                sent = await _send(self.request, self.n)
                now = await self.tally()
                sent.on_a, sent.on_b = now["a"] - seen["a"], now["b"] - seen["b"]
                seen = now
                phase.sent.append(sent)
                await self.look(phase, start)
            return phase
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                await self.look(phase, start)
                await asyncio.sleep(0.05)

        async def client() -> None:
            while not done.is_set():
                self.n += 1
                phase.sent.append(await _send(self.request, self.n))
                if stop(phase) or time.monotonic() - began > limit_s:
                    done.set()

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(client() for _ in range(self.clients)))
        done.set()
        await watcher
        return phase

    async def close(self) -> None:
        await self.http.close()
        await self.doubles.aclose()


async def run_outage(fault: str, clients: int, door: str, args: argparse.Namespace, urls: dict[str, str]) -> Outage:
    result = Outage(fault, clients, door)
    behave(urls["a"])
    behave(urls["b"])
    with server(urls, ("a", "b")) as (url, _):
        scenario = Scenario(url, clients, door, urls)
        scenario.open_s = float((await scenario.http.http.get("/monitoring/breakers")).json()["policy"]["open_s"])
        after = args.after * clients
        limit_s = scenario.open_s * 0.8  # done before an open breaker would let a probe through
        await scenario.run(lambda p: len(p.sent) >= clients * 4, limit_s)  # warm up
        baseline = await scenario.run(lambda p: len(p.sent) >= max(40, after), limit_s)
        result.baseline = baseline.sent
        if baseline.opened_at is not None:
            result.open_reason = f"OPENED WHILE HEALTHY: {baseline.reason}"
        start = await scenario.tally()
        if fault == "503":
            behave(urls["a"], fail_status=503)
        else:
            behave(urls["a"], delay_s=HANG_S)
        outage_began = time.monotonic()
        others = Others()
        others.start()
        phase = await scenario.run(lambda p: p.after_open() >= after or len(p.sent) >= 200 * clients, limit_s)
        result.others = others.cores()
        end = await scenario.tally()
        result.sent = phase.sent
        result.opened_at, result.tries_on_a_until_open = phase.opened_at, phase.tries_on_a_until_open
        result.open_reason = result.open_reason or phase.reason
        result.tries_on_a_total = end["a"] - start["a"]
        result.tries_on_b_total = end["b"] - start["b"]
        if phase.tries_on_a_until_open is not None:
            result.tries_on_a_after_open = result.tries_on_a_total - phase.tries_on_a_until_open
        result.breaker_after = await scenario.http.breaker("a")
        answer = await scenario.http.http.get("/monitoring/calls", params={"outcome": "error", "limit": 1000})
        result.causes = dict(Counter(c["cause"] for c in answer.json()["calls"]))
        for s in result.sent:
            s.began -= outage_began
        if result.opened_at is not None:
            result.opened_at -= outage_began
        await scenario.close()
    behave(urls["a"])
    return result


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.1f}"


def _ms_max(values: list[float]) -> str:
    return "-" if not values else f"{_ms(values)} / {max(values) * 1000:.0f}"


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def outage_report(outages: list[Outage], problems: list[str]) -> list[str]:
    lines = [
        "| outage of `a` (of a and b) | requests | failed (non-200) | requests until `a`'s breaker opened "
        "| tries on `a` until open | time to open | tries on `a` after open |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outages:
        until = o.until_open()
        opened = "never" if o.opened_at is None else f"{o.opened_at * 1000:.0f} ms"
        failed = [s for s in o.sent if s.status != 200]
        lines.append(
            f"| {o.name} | {len(o.sent)} | **{len(failed)}** | {len(until) if o.opened_at is not None else '-'} "
            f"| {o.tries_on_a_until_open if o.tries_on_a_until_open is not None else '-'} | {opened} "
            f"| {o.tries_on_a_after_open if o.tries_on_a_after_open is not None else '-'} |"
        )
        if failed:
            problems.append(f"{o.name}: {len(failed)} requests failed: {dict(Counter(s.status for s in failed))}")
        if o.opened_at is None:
            problems.append(f"{o.name}: a's breaker did not open (after the run: {o.breaker_after})")
    lines += [
        "",
        "| latency, ms: median (/ max) | healthy baseline | until open: tried `a`, then `b` "
        "| until open: `b` first | until open, all | after open: median / p95 / max |",
        "|---|---|---|---|---|---|",
    ]
    for o in outages:
        base = [s.seconds for s in o.baseline]
        until = o.until_open()
        after = [s.seconds for s in o.after_open()]
        if o.clients == 1:
            via_a = _ms_max([s.seconds for s in until if s.on_a])
            b_only = _ms_max([s.seconds for s in until if not s.on_a])
        else:
            via_a = b_only = "(not told apart)"
        after_figure = "-" if not after else f"{_ms(after)} / {_p95(after) * 1000:.1f} / {max(after) * 1000:.0f}"
        lines.append(
            f"| {o.name} | {_ms(base)} | {via_a} | {b_only} | {_ms_max([s.seconds for s in until])} | {after_figure} |"
        )
        if o.clients == 1:
            retried = [s.n for s in o.sent if (s.on_a or 0) > 1 or s.on_b != 1]
            if retried:
                problems.append(f"{o.name}: requests {retried[:10]} made more than one try on a or not one on b")
            if o.tries_on_a_after_open:
                problems.append(f"{o.name}: {o.tries_on_a_after_open} tries on a after its breaker opened")
            penalty = 1.0 if o.fault == "hang" else 0.0  # the 1 s timeout
            for s in until:
                if s.on_a and s.seconds > penalty + statistics.median(base) + 0.15:
                    problems.append(f"{o.name}: request {s.n} took {s.seconds * 1000:.0f} ms (a backoff wait?)")
    lines.append("")
    for o in outages:
        lines.append(
            f"- {o.name}: opened because {o.open_reason!r}; tries at the doubles during the run: "
            f"a {o.tries_on_a_total}, b {o.tries_on_b_total}; error records' causes {o.causes}; "
            f"a's breaker at the end: {o.breaker_after and o.breaker_after['state']}; the rest of the machine "
            f"used {o.others:.2f} cores meanwhile (scenario run again {o.redone} times for that)"
        )
        if o.clients == 1:
            pattern = ", ".join(f"{'A' if s.on_a else 'b'} {s.seconds * 1000:.0f}" for s in o.until_open())
            lines.append(f"  until open, each request (A: tried a first, then b; b: b first), ms: {pattern}")
    return lines


# -- the run -------------------------------------------------------------------------------------
SCENARIOS = (
    ("503", 1, "door"),
    ("503", 1, "langserve"),
    ("503", 16, "door"),
    ("hang", 1, "door"),
    ("hang", 16, "door"),
)


def _show(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def measure(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Runs the parts asked for, printing each one's tables as it ends; the figures and problems."""
    problems: list[str] = []
    figures: dict[str, Any] = {}
    waited: list[float] = []  # seconds waited for the rest of the machine to be quiet
    _show([f"load average before: {_load()} ({os.cpu_count()} cores)", ""])
    with doubles() as urls:
        if not args.skip_cpu:
            cpu = await measure_cpu(args, urls, waited)
            figures["cpu"] = {kind: [vars(r) for r in rounds] for kind, rounds in cpu.items()}
            _show([*cpu_report(cpu, args, problems), "", f"load average after part 1: {_load()}", ""])
        if not args.skip_outage:
            outages = []
            for fault, clients, door in SCENARIOS:
                for redone in range(3):  # as the CPU rounds: again once quiet, when others were busy
                    await quiet(args.quiet_wait, waited)
                    outage = await run_outage(fault, args.clients if clients > 1 else 1, door, args, urls)
                    outage.redone = redone
                    if outage.others < QUIET_CORES:
                        break
                outages.append(outage)
            figures["outages"] = [
                {**vars(o), "baseline": [vars(s) for s in o.baseline], "sent": [vars(s) for s in o.sent]}
                for o in outages
            ]
            _show([*outage_report(outages, problems), ""])
    figures["waited_s"] = waited
    _show(
        [
            f"load average at the end: {_load()}; waited {sum(waited):.0f} s in all for the rest of the machine "
            f"to be quiet (under {QUIET_CORES} of a core), longest wait {max(waited, default=0):.0f} s"
        ]
    )
    return figures, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--after", type=int, default=40, help="requests (per client) once a's breaker is open")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait for a quiet machine, s")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-outage", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    figures, problems = asyncio.run(measure(args))
    if problems:
        print("\nCHECKS FAILED:\n" + "\n".join(f"  - {p}" for p in problems))
    else:
        print("\nall checks passed")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
