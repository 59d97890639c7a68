"""Server CPU per request: ours next to the framework it runs on (plain LangServe) and next to
LiteLLM's proxy, the same question to the same provider double, side by side in one run.

Servers, each in a process of its own, all against one instant provider double (its own process)
that gives every request the same 19-word answer, streamed one chunk a word (its default answer
quotes the prompt, so ours' longer prompt templates would get longer answers than the others):

- ours: ``python server.py`` with every feature on and no keys (an open server), as
  ``benchmarks/door_cpu.py`` runs it;
- plain LangServe: ``benchmarks/plain_langserve.py`` (``add_routes``, ChatOpenAI with a
  ``with_fallbacks`` backup), as a user writes it; and once more with ``--streaming``
  (``streaming=True``, as ours builds its models) for ``/chat/invoke`` only;
- LiteLLM's proxy (``litellm --config``, one uvicorn worker, no database, no master key, a
  ``openai -> gpt4`` fallback), in a virtual environment of its own (``.venv-litellm``, created
  on first use with the pinned version), started with a scrubbed environment in a temporary folder.

Each server's CPU is read from ``/proc`` (user + system, its whole process tree, so forked workers
count and neither the clients' nor the double's CPU does) before and after each round of
``--requests`` requests from ``--clients`` connections. Rounds of every kind alternate, the order
rotating each round, so a noisy machine weighs on all kinds alike; a kind's figure is the median of
its rounds, and a ratio is given both as the ratio of medians and as the median of the ratios of
rounds run back to back. Streams are also given per chunk the client received (SSE data events).
LangServe routes are asked through httpx, the OpenAI-compatible ones through the official
``openai`` SDK. From the double's log: provider calls per request and whether the server asked
for a stream (ours always does, for its first-token deadline; plain LangServe and LiteLLM only on
their stream routes). Then client-side latency, p50 and p99, at 1 and at 32 connections.

    .venv/bin/python benchmarks/framework_cpu.py [--rounds 6] [--requests 200] [--clients 16]
        [--only KIND,...] [--skip-litellm] [--skip-latency] [--wait-load 1.5] [--json out.json]

``--only list`` prints the kinds. Workers scaling is ``benchmarks/workers_scale.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam
from starlette.types import ASGIApp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load import REMOTE_MODELS, server_settings
from tests.helpers.processes import ROOT, free_port, server_popen, uvicorn_process, wait_healthy
from tests.helpers.provider_double import Behaviour, ProviderDouble

QUESTION = "What is a circuit breaker? #{n}"
ANSWER = "The double answers: a circuit breaker stops calls to a failing service, then lets one through to test it."
LITELLM_VENV = ROOT / ".venv-litellm"
# 1.109 and later need packages this machine's registry does not have (litellm-proxy, post
# releases of litellm-proxy-extras). 1.82.7 and 1.82.8 were compromised and withdrawn; 1.107.x,
# reported compromised too, is not on the index either.
LITELLM_VERSION = "1.108.0"
# Setuptools' own; a release that adds another .pth runs code at every interpreter start (1.82.8 did).
KNOWN_PTH = {"distutils-precedence.pth"}
LATENCY_CLIENTS = (1, 32)

Request = Callable[[int], Awaitable[int]]  # one request; returns the chunks the client received


# -- reading CPU ---------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree = [pid]
    for parent in tree:
        tree.extend(children.get(parent, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid``'s process tree so far, with its reaped children's."""
    total = 0
    for member in process_tree(pid):
        fields = _stat(member)
        if fields is not None:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (``/proc/stat``: user, nice,
    system, irq, softirq; not idle, iowait or steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class OtherWork:
    """Cores that processes outside this benchmark's own tree (this process, its servers and its
    double) used since the last ``reset``: other work on a shared machine."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._began = (time.perf_counter(), machine_busy_seconds(), tree_cpu_seconds(os.getpid()))

    def cores(self) -> float:
        wall, busy, mine = self._began
        elapsed = time.perf_counter() - wall
        theirs = (machine_busy_seconds() - busy) - (tree_cpu_seconds(os.getpid()) - mine)
        return max(0.0, theirs) / elapsed if elapsed > 0 else 0.0


# -- the servers ---------------------------------------------------------------------------------
def fixed_double() -> ASGIApp:
    """The provider double, every remote model giving ``ANSWER`` at once (uvicorn factory)."""
    double = ProviderDouble(keep_bodies=False)
    for model in REMOTE_MODELS.values():
        double.set(model, Behaviour(text=ANSWER))
    return double.app


@contextmanager
def fixed_double_process() -> Iterator[tuple[str, int]]:
    # Its keep-alive outlasts the SDKs' idle connections, so they never reuse one it is closing.
    with uvicorn_process(
        "benchmarks.framework_cpu:fixed_double", dict(os.environ), ready_path="/double/served", backlog=4096,
        keep_alive_s=120,
    ) as (url, pid):  # fmt: skip
        yield url, pid


@dataclass
class Server:
    name: str
    url: str
    pid: int  # the root of the process tree whose CPU counts

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)


def _scrubbed_env() -> dict[str, str]:
    """This shell's environment without provider or tracing variables."""
    skip = ("OPENAI_", "GOOGLE_", "GEMINI_", "REDIS_", "LANGCHAIN_", "LANGSMITH_", "LLM_SERVER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(skip)}


@contextmanager
def ours(folder: Path, double_url: str, *args: str) -> Iterator[Server]:
    """``python server.py`` (``args``: its options, e.g. ``--workers 2``); the tree's root is that
    process, so its workers and its local engine count."""
    # Workers share Prometheus values in a folder they empty at start: one of this run's, not var/'s.
    settings = {**server_settings(double_url), "LLM_SERVER_METRICS_DIR": str(folder / "ours" / "prometheus")}
    with ExitStack() as stack:
        for attempt in (1, 2):
            try:
                process, url = stack.enter_context(server_popen(folder / f"ours-{attempt}", settings, *args))
                break
            except RuntimeError as exc:  # seen once: the engine's spawn failed with EFAULT
                log = (folder / f"ours-{attempt}" / "server.log").read_text()[-600:]
                print(f"ours did not start ({exc}), its log ends:\n{log}", file=sys.stderr, flush=True)
                if attempt == 2:
                    raise
        yield Server("ours", url, process.pid)
        process.terminate()
        process.wait(timeout=15)


@contextmanager
def _popen(command: list[str], env: dict[str, str], cwd: Path, log: Path, ready: str, name: str) -> Iterator[Server]:
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url, timeout_s=240, path=ready)
        yield Server(name, url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def plain(folder: Path, double_url: str, streaming: bool = False) -> Iterator[Server]:
    env = {**_scrubbed_env(), "OPENAI_BASE_URL": f"{double_url}/v1", "OPENAI_API_KEY": "sk-load-0123456789abcdef"}
    command = [sys.executable, str(ROOT / "benchmarks" / "plain_langserve.py"), *(["--streaming"] if streaming else [])]
    name = "plain-streaming" if streaming else "plain"
    with _popen(command, env, ROOT, folder / f"{name}.log", "/chat/input_schema", name) as server:
        yield server


def ensure_litellm() -> str:
    """``.venv-litellm`` with the pinned LiteLLM proxy (created when missing); its version."""
    python = LITELLM_VENV / "bin" / "python"
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        print(f"creating {LITELLM_VENV} with litellm[proxy]=={LITELLM_VERSION} (a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
        subprocess.run(pip, check=True)
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    site = next((LITELLM_VENV / "lib").glob("python3*/site-packages"))
    unknown = sorted(p.name for p in site.glob("*.pth") if p.name not in KNOWN_PTH)
    if unknown:
        raise SystemExit(f"{site} has .pth files that run at every start: {unknown}; look at them before going on")
    return version


def litellm_config(double_url: str) -> str:
    """Models ``openai`` (gpt-4o-mini) and ``gpt4`` (gpt-4o) at the double, ``openai`` falling back
    to ``gpt4``, as ours' default ladder begins; no retries, ours' provider timeout."""
    models = "\n".join(
        f'  - model_name: {name}\n    litellm_params: {{model: openai/{model}, api_base: "{double_url}/v1", '
        f"api_key: sk-load-0123456789abcdef, timeout: 30, max_retries: 0}}"
        for name, model in (("openai", "gpt-4o-mini"), ("gpt4", "gpt-4o"))
    )
    return f"""model_list:
{models}
router_settings:
  fallbacks: [{{openai: [gpt4]}}]
  num_retries: 0
general_settings:
  dangerously_permit_weak_or_unset_master_key: true  # an open server, as ours here
litellm_settings:
  num_retries: 0
  request_timeout: 30
"""


@contextmanager
def litellm(folder: Path, double_url: str) -> Iterator[Server]:
    home = folder / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(litellm_config(double_url))
    # Only what it needs: no keys or tokens of this shell, and a folder of its own (it reads .env there).
    env = {
        "PATH": f"{LITELLM_VENV / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
        "LITELLM_TELEMETRY_DISABLED": "true",
        "LITELLM_LOG": "ERROR",
    }
    command = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config), "--num_workers", "1",
               "--keepalive_timeout", "65"]  # fmt: skip
    with _popen(command, env, home, home / "litellm.log", "/health/liveliness", "litellm") as server:
        yield server


# -- the requests --------------------------------------------------------------------------------
@dataclass
class Clients:
    http: httpx.AsyncClient
    sdk: openai.AsyncOpenAI


def langserve_invoke(clients: Clients, route: str, configurable: bool) -> Request:
    async def request(n: int) -> int:
        body: dict[str, Any] = {"input": {"question": QUESTION.format(n=n)}}
        if configurable:
            body["config"] = {"configurable": {"llm_model": "openai"}}
        response = await clients.http.post(f"{route}/invoke", json=body)
        response.raise_for_status()
        if response.json()["output"] != ANSWER:
            raise RuntimeError(f"not the double's answer: {response.text[:200]}")
        return 0

    return request


def langserve_stream(clients: Clients, route: str, configurable: bool) -> Request:
    async def request(n: int) -> int:
        body: dict[str, Any] = {"input": {"question": QUESTION.format(n=n)}}
        if configurable:
            body["config"] = {"configurable": {"llm_model": "openai"}}
        async with clients.http.stream("POST", f"{route}/stream", json=body) as response:
            response.raise_for_status()
            received = b"".join([part async for part in response.aiter_bytes()])
        if b"event: end" not in received or b"event: error" in received or b"it." not in received:
            raise RuntimeError(f"stream did not end well: {received[-300:]!r}")
        return received.count(b"event: data")

    return request


def door_plain(clients: Clients) -> Request:
    async def request(n: int) -> int:
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION.format(n=n)}]
        completion = await clients.sdk.chat.completions.create(model="openai", messages=messages)
        if completion.choices[0].message.content != ANSWER:
            raise RuntimeError(f"not the double's answer: {completion}")
        return 0

    return request


def door_stream(clients: Clients) -> Request:
    async def request(n: int) -> int:
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION.format(n=n)}]
        stream = await clients.sdk.chat.completions.create(
            model="openai",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks, text = 0, []
        async for chunk in stream:
            chunks += 1
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
        if "".join(text) != ANSWER:
            raise RuntimeError(f"not the double's answer: {''.join(text)!r}")
        return chunks

    return request


@dataclass(frozen=True)
class Kind:
    server: str
    label: str
    build: Callable[[Clients], Request]
    stream: bool


KINDS: dict[str, Kind] = {
    "ours-chat-invoke": Kind("ours", "ours `/chat/invoke`", lambda c: langserve_invoke(c, "/chat", True), False),
    "plain-chat-invoke": Kind(
        "plain", "plain LangServe `/chat/invoke`", lambda c: langserve_invoke(c, "/chat", False), False
    ),
    "plain-streaming-chat-invoke": Kind(
        "plain-streaming",
        "plain LangServe `/chat/invoke`, `streaming=True`",
        lambda c: langserve_invoke(c, "/chat", False),
        False,
    ),
    "ours-fallback-invoke": Kind(
        "ours", "ours `/fallback/invoke`", lambda c: langserve_invoke(c, "/fallback", False), False
    ),
    "ours-door": Kind("ours", "ours `/v1/chat/completions`", door_plain, False),
    "litellm-door": Kind("litellm", "LiteLLM `/v1/chat/completions`", door_plain, False),
    "ours-chat-stream": Kind("ours", "ours `/chat/stream`", lambda c: langserve_stream(c, "/chat", True), True),
    "plain-chat-stream": Kind(
        "plain", "plain LangServe `/chat/stream`", lambda c: langserve_stream(c, "/chat", False), True
    ),
    "ours-fallback-stream": Kind(
        "ours", "ours `/fallback/stream`", lambda c: langserve_stream(c, "/fallback", False), True
    ),
    "ours-door-stream": Kind("ours", "ours `/v1/chat/completions` streamed", door_stream, True),
    "litellm-door-stream": Kind("litellm", "LiteLLM `/v1/chat/completions` streamed", door_stream, True),
}
LATENCY_KINDS = (
    "ours-chat-invoke",
    "plain-chat-invoke",
    "ours-door",
    "litellm-door",
    "ours-chat-stream",
    "plain-chat-stream",
    "ours-door-stream",
    "litellm-door-stream",
)
RATIOS = (  # (other, ours, what it says): other's CPU / ours, >= 1 when ours is cheaper
    ("plain-chat-invoke", "ours-chat-invoke", "plain LangServe / ours, `/chat/invoke`"),
    ("plain-streaming-chat-invoke", "ours-chat-invoke", "plain LangServe `streaming=True` / ours, `/chat/invoke`"),
    ("plain-chat-stream", "ours-chat-stream", "plain LangServe / ours, `/chat/stream`"),
    ("litellm-door", "ours-door", "LiteLLM / ours, `/v1/chat/completions`"),
    ("litellm-door-stream", "ours-door-stream", "LiteLLM / ours, `/v1/chat/completions` streamed"),
)


# -- the rounds ----------------------------------------------------------------------------------
@dataclass
class Round:
    cpu_ms: float  # server CPU per request
    chunks: float  # chunks the client received per request
    latencies: list[float] = field(repr=False)
    other_cores: float = 0.0  # what other work on the machine used meanwhile


async def one_round(request: Request, server: Server, requests: int, clients: int, start: int) -> Round:
    queue = iter(range(start, start + requests))
    latencies: list[float] = []
    chunks = 0

    async def client() -> None:
        nonlocal chunks
        for n in queue:
            began = time.perf_counter()
            received = await request(n)
            latencies.append(time.perf_counter() - began)
            chunks += received

    other = OtherWork()
    before = server.cpu()
    await asyncio.gather(*(client() for _ in range(clients)))
    after = server.cpu()
    return Round((after - before) / requests * 1000, chunks / requests, latencies, other.cores())


@dataclass
class Figures:
    cpu: dict[str, list[Round]] = field(default_factory=dict)
    latency: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    load: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    litellm_version: str | None = None
    asked: dict[int, str] = field(default_factory=dict)  # question number -> its kind
    provider: dict[str, dict[str, float]] = field(default_factory=dict)  # per kind, from the double's log


def rotated(names: list[str], by: int) -> list[str]:
    by %= len(names)
    return names[by:] + names[:by]


async def measure(args: argparse.Namespace, kinds: list[str], figures: Figures) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-framework-"))
    wanted = {KINDS[k].server for k in kinds}
    with fixed_double_process() as (double_url, _), ExitStack() as processes:
        starters: dict[str, Callable[[], Any]] = {
            "ours": lambda: ours(folder, double_url),
            "plain": lambda: plain(folder, double_url),
            "plain-streaming": lambda: plain(folder, double_url, streaming=True),
            "litellm": lambda: litellm(folder, double_url),
        }
        servers = {name: processes.enter_context(starters[name]()) for name in starters if name in wanted}
        connections = max(args.clients, *LATENCY_CLIENTS)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with AsyncExitStack() as open_clients:
            requests: dict[str, tuple[Request, Server]] = {}
            for name, server in servers.items():
                http = await open_clients.enter_async_context(
                    httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits)
                )
                # The SDK's own HTTP client (httpx2), with a pool as large as httpx's here.
                pool = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
                sdk = await open_clients.enter_async_context(
                    openai.AsyncOpenAI(
                        base_url=f"{server.url}/v1",
                        api_key="open",
                        http_client=openai.DefaultAsyncHttpxClient(timeout=60, limits=pool),
                        max_retries=0,
                    )
                )
                for kind in kinds:
                    if KINDS[kind].server == name:
                        requests[kind] = (KINDS[kind].build(Clients(http, sdk)), server)
            await run(args, kinds, requests, connections, figures)
        served = httpx.get(f"{double_url}/double/served", timeout=120).json()["served"]
    figures.provider = provider_view(served, figures.asked)
    shutil.rmtree(folder, ignore_errors=True)


def provider_view(served: list[dict[str, Any]], asked: dict[int, str]) -> dict[str, dict[str, float]]:
    """Per kind, what the double saw: provider calls per client request and the share it streamed."""
    calls: dict[str, list[dict[str, Any]]] = {}
    for request in served:
        numbers = re.findall(r"#(\d+)", request["question"])
        if numbers and int(numbers[-1]) in asked:
            calls.setdefault(asked[int(numbers[-1])], []).append(request)
    view = {}
    for kind, requests in calls.items():
        questions = {re.findall(r"#(\d+)", r["question"])[-1] for r in requests}
        view[kind] = {
            "calls_per_request": len(requests) / len(questions),
            "streamed": sum(r["stream"] for r in requests) / len(requests),
        }
    return view


async def run(
    args: argparse.Namespace,
    kinds: list[str],
    requests: dict[str, tuple[Request, Server]],
    connections: int,
    figures: Figures,
) -> None:
    n = 0
    for request, server in requests.values():  # warm up: connections, caches, first builds
        await one_round(request, server, connections * 2, connections, n)
        n += connections * 2
    figures.load["start"] = os.getloadavg()
    figures.cpu = {kind: [] for kind in kinds}
    for r in range(args.rounds):
        for kind in rotated(kinds, r):
            request, server = requests[kind]
            figures.asked.update(dict.fromkeys(range(n, n + args.requests), kind))
            figures.cpu[kind].append(await one_round(request, server, args.requests, args.clients, n))
            n += args.requests
        print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    if not args.skip_latency:
        timed = [k for k in LATENCY_KINDS if k in requests]
        for clients in LATENCY_CLIENTS:
            figures.latency[clients] = {kind: [] for kind in timed}
            for r in range(args.latency_rounds):
                for kind in rotated(timed, r):
                    request, server = requests[kind]
                    done = await one_round(request, server, args.requests, clients, n)
                    figures.latency[clients][kind].extend(done.latencies)
                    n += args.requests
            print(f"latency at {clients} connection(s) done", file=sys.stderr, flush=True)
    figures.load["end"] = os.getloadavg()


# -- the report ----------------------------------------------------------------------------------
def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(args: argparse.Namespace, figures: Figures) -> str:
    load = figures.load
    others = [r.other_cores for rounds in figures.cpu.values() for r in rounds]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.2f}' for x in load['before'])} before the servers started, "
        f"{' '.join(f'{x:.2f}' for x in load['start'])} after the warm-up, "
        f"{' '.join(f'{x:.2f}' for x in load['end'])} at the end; {args.rounds} rounds of {args.requests} "
        f"requests per kind, {args.clients} connections; other work on the machine during the rounds: "
        f"{statistics.median(others):.2f} cores (median), {max(others):.2f} at most"
        + (f"; LiteLLM {figures.litellm_version}" if figures.litellm_version else ""),
        "",
        "| kind | server CPU per request (median) | chunks received per answer | per chunk | rounds (ms) |",
        "|---|---|---|---|---|",
    ]
    medians = {kind: statistics.median(r.cpu_ms for r in rounds) for kind, rounds in figures.cpu.items()}
    for kind, rounds in figures.cpu.items():
        chunks = statistics.median(r.chunks for r in rounds)
        per_chunk = f"{medians[kind] / chunks * 1000:.0f} µs" if KINDS[kind].stream and chunks else ""
        shown = f"{chunks:.1f}" if KINDS[kind].stream else ""
        spread = " ".join(f"{r.cpu_ms:.1f}" for r in rounds)
        lines.append(f"| {KINDS[kind].label} | {medians[kind]:.2f} ms | {shown} | {per_chunk} | {spread} |")
    if figures.provider:
        words = len(ANSWER.split(" "))
        lines += [
            "",
            f"| kind | provider calls per request | streamed from the provider ({words} chunks an answer) |",
            "|---|---|---|",
        ]
        for kind in figures.cpu:
            if seen := figures.provider.get(kind):
                lines.append(f"| {KINDS[kind].label} | {seen['calls_per_request']:.2f} | {seen['streamed']:.0%} |")
    lines += ["", "| ratio (≥ 1.00: ours cheaper) | of the medians | median of paired rounds |", "|---|---|---|"]
    for other, mine, label in RATIOS:
        if other in figures.cpu and mine in figures.cpu:
            paired = statistics.median(
                o.cpu_ms / m.cpu_ms for o, m in zip(figures.cpu[other], figures.cpu[mine], strict=True)
            )
            lines.append(f"| {label} | **{medians[other] / medians[mine]:.2f}** | {paired:.2f} |")
    if figures.latency:
        header = "| client latency | " + " | ".join(
            f"p50 / p99 at {c} connection{'s' if c > 1 else ''}" for c in figures.latency
        )
        lines += ["", header + " |", "|---|" + "---|" * len(figures.latency)]
        timed = next(iter(figures.latency.values()))
        for kind in timed:
            cells = []
            for by_kind in figures.latency.values():
                values = by_kind[kind]
                cells.append(f"{percentile(values, 50) * 1000:.1f} / {percentile(values, 99) * 1000:.1f} ms")
            lines.append(f"| {KINDS[kind].label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wait_for_quiet(threshold: float, longest_s: float, other_cores: float = 0.25) -> None:
    """Wait until the 1-minute load average is under ``threshold`` and other work used under
    ``other_cores`` over the last 10 s (at most ``longest_s``)."""
    deadline = time.monotonic() + longest_s
    while time.monotonic() < deadline:
        other = OtherWork()
        time.sleep(10)  # the load of other processes: nothing to wait on but time
        load, busy = os.getloadavg()[0], other.cores()
        if load < threshold and busy < other_cores:
            break
        print(f"load {load:.2f}, other work {busy:.2f} cores: waiting", file=sys.stderr, flush=True)
    print(f"starting at load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections for the CPU rounds")
    parser.add_argument("--only", default=None, help="comma-separated kinds ('list' prints them)")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--latency-rounds", type=int, default=3, help="rounds per kind at each connection count")
    parser.add_argument("--wait-load", type=float, default=None, help="first wait for a 1-minute load under this")
    parser.add_argument("--wait-max", type=float, default=1800, help="longest wait for --wait-load, seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.only == "list":
        print("\n".join(f"{name:30} {kind.label}" for name, kind in KINDS.items()))
        return 0
    kinds = list(KINDS) if args.only is None else [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    if args.skip_litellm:
        kinds = [k for k in kinds if KINDS[k].server != "litellm"]
    logging.getLogger("httpx").setLevel(logging.WARNING)
    figures = Figures()
    if any(KINDS[k].server == "litellm" for k in kinds):
        figures.litellm_version = ensure_litellm()
    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)
    figures.load["before"] = os.getloadavg()
    asyncio.run(measure(args, kinds, figures))
    print(report(args, figures))
    if args.json is not None:
        raw = {
            "cpu_ms": {k: [r.cpu_ms for r in v] for k, v in figures.cpu.items()},
            "chunks": {k: [r.chunks for r in v] for k, v in figures.cpu.items()},
            "other_cores": {k: [r.other_cores for r in v] for k, v in figures.cpu.items()},
            "latency_s": {str(c): v for c, v in figures.latency.items()},
            "load": figures.load,
            "provider": figures.provider,
            "litellm_version": figures.litellm_version,
        }
        args.json.write_text(json.dumps(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
