"""Throughput of ours (``python server.py``, every feature on, an open server) at ``--workers 1``
and ``--workers 2`` on this machine's 2 cores, side by side in one run:

1. ``/chat/invoke`` against the instant provider double, ``--clients`` connections: requests per
   second (median of rounds).
2. ``--streams`` concurrent ``/chat/stream`` requests against a double that streams slowly: each
   answer 20 chunks 0.1 s apart, so a 2-second generation; the ideal is every stream done in 2 s
   (``streams / 2`` streams per second).

One worker: the server's process tree pinned to one core, the load generator (this process) and
the provider double to the other, so the server has a core of its own. Two workers: nobody pinned.
The streams go out through httpx clients of 16 connections each (one pool of 256 made the load
generator, not the server, the bottleneck of a round's last seconds).
Pinning is ``os.sched_setaffinity`` on every thread of each process tree (what ``taskset -a -p``
does), checked through ``/proc/<pid>/status``. Both servers run for the whole benchmark and rounds
alternate between them; the CPU each side used (server tree, double, load generator, and other
work on the machine) is read from ``/proc`` per round, to show which one was the bottleneck, with
the busiest worker's share of the workers' CPU (uvicorn's workers take connections from one shared
socket, first come first served). ``--wait-load`` first waits for a 1-minute load under it and
for other work under a quarter of a core.

    .venv/bin/python benchmarks/workers_scale.py [--rounds 5] [--requests 1000] [--clients 32]
        [--streams 256] [--stream-rounds 3] [--wait-load 1.5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.types import ASGIApp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.framework_cpu import (
    OtherWork,
    Server,
    ours,
    percentile,
    process_tree,
    tree_cpu_seconds,
    wait_for_quiet,
)
from benchmarks.load import REMOTE_MODELS, double_process
from tests.helpers.processes import uvicorn_process
from tests.helpers.provider_double import Behaviour, ProviderDouble

GENERATION_S = 2.0
CHUNKS = 20
ANSWER = " ".join(f"word{i}" for i in range(CHUNKS))  # the double streams one chunk a word
LOADGEN_CPUS = {0}
SERVER_CPUS = {1}
ALL_CPUS = LOADGEN_CPUS | SERVER_CPUS
BODY = {"config": {"configurable": {"llm_model": "openai"}}}
POOL_CONNECTIONS = 16  # per httpx client of the stream rounds


def slow_double() -> ASGIApp:
    """The provider double, every remote model streaming ``CHUNKS`` chunks over ``GENERATION_S``
    (uvicorn factory)."""
    double = ProviderDouble(keep_bodies=False)
    for model in REMOTE_MODELS.values():
        double.set(model, Behaviour(text=ANSWER, chunk_delay_s=GENERATION_S / CHUNKS))
    return double.app


@contextmanager
def slow_double_process() -> Iterator[tuple[str, int]]:
    with uvicorn_process(
        "benchmarks.workers_scale:slow_double", dict(os.environ), ready_path="/double/served", backlog=4096,
        keep_alive_s=120,
    ) as (url, pid):  # fmt: skip
        yield url, pid


# -- pinning -------------------------------------------------------------------------------------
def pin(pid: int, cpus: set[int], *, children: bool = True) -> None:
    """Every thread of ``pid`` (and of its descendants, with ``children``) onto ``cpus``; threads
    and processes they start later inherit it."""
    members = process_tree(pid) if children else [pid]
    for member in members:
        for task in Path(f"/proc/{member}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except (ProcessLookupError, PermissionError):
                pass  # a thread that just ended
    for member in members:
        allowed = _allowed(member)
        assert allowed is None or allowed == cpus, f"process {member} runs on {allowed}, not {cpus}"


def _allowed(pid: int) -> set[int] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    listed = next(line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list"))
    cpus: set[int] = set()
    for part in listed.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


@dataclass
class Side:
    """One server and what must be pinned where while it is measured."""

    label: str
    server: Server
    pinned: bool

    def arrange(self, double_pid: int) -> None:
        pin(self.server.pid, SERVER_CPUS if self.pinned else ALL_CPUS)
        pin(os.getpid(), LOADGEN_CPUS if self.pinned else ALL_CPUS, children=False)  # the servers are children
        pin(double_pid, LOADGEN_CPUS if self.pinned else ALL_CPUS)


@dataclass
class Outcome:
    wall_s: float
    done: int
    durations: list[float] = field(repr=False)
    cores: dict[str, float]  # CPU used per second of the round: server, double, load generator


@contextmanager
def cpu_watch(side: Side, double_pid: int, into: dict[str, float]) -> Iterator[None]:
    readers = {
        "server": lambda: tree_cpu_seconds(side.server.pid),
        "double": lambda: tree_cpu_seconds(double_pid),
        "load generator": lambda: sum(os.times()[:2]),  # this process alone: the servers are its children
    }
    before = {name: read() for name, read in readers.items()}
    workers_before = _workers_cpu(side.server.pid)
    other = OtherWork()
    began = time.perf_counter()
    yield
    wall = time.perf_counter() - began
    into.update({name: (read() - before[name]) / wall for name, read in readers.items()})
    into["other work"] = other.cores()
    used = {pid: cpu - workers_before.get(pid, 0.0) for pid, cpu in _workers_cpu(side.server.pid).items()}
    # How evenly the workers shared the load: the busiest one's share of the workers' CPU.
    into["busiest worker"] = max(used.values()) / sum(used.values()) if sum(used.values()) > 0 else 1.0


def _workers_cpu(root: int) -> dict[int, float]:
    """CPU seconds of each process of the server that serves requests: uvicorn's workers when it
    has any, else the root (the local engine's process is left out)."""
    members = [p for p in process_tree(root) if b"engine_server" not in _cmdline(p)]
    workers = [p for p in members if p != root] or [root]
    return {p: tree_cpu_seconds(p) for p in workers}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def invoke_round(side: Side, double_pid: int, http: httpx.AsyncClient, requests: int, clients: int) -> Outcome:
    side.arrange(double_pid)
    numbers = iter(range(requests))
    durations: list[float] = []
    cores: dict[str, float] = {}

    async def client() -> None:
        for i in numbers:
            began = time.perf_counter()
            response = await http.post("/chat/invoke", json={"input": {"question": f"question {i}"}, **BODY})
            response.raise_for_status()
            durations.append(time.perf_counter() - began)

    with cpu_watch(side, double_pid, cores):
        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - began
    return Outcome(wall, requests, durations, cores)


async def stream_round(side: Side, double_pid: int, pools: list[httpx.AsyncClient], streams: int) -> Outcome:
    side.arrange(double_pid)
    durations: list[float] = []
    cores: dict[str, float] = {}

    async def one(i: int) -> None:
        began = time.perf_counter()
        body = {"input": {"question": f"q{i}"}, **BODY}
        async with pools[i % len(pools)].stream("POST", "/chat/stream", json=body) as response:
            response.raise_for_status()
            received = b"".join([part async for part in response.aiter_bytes()])
        if b"event: end" not in received or received.count(b"word") < CHUNKS:
            raise RuntimeError(f"stream {i} incomplete: {received[-300:]!r}")
        durations.append(time.perf_counter() - began)

    with cpu_watch(side, double_pid, cores):
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(streams)))
        wall = time.perf_counter() - began
    return Outcome(wall, streams, durations, cores)


def _cores(outcomes: list[Outcome], name: str) -> str:
    return f"{statistics.median(o.cores[name] for o in outcomes):.2f}"


def report_invoke(results: dict[str, list[Outcome]], args: argparse.Namespace) -> list[str]:
    one, two = results["1 worker"], results["2 workers"]
    rate = {label: statistics.median(o.done / o.wall_s for o in runs) for label, runs in results.items()}
    paired = statistics.median((b.done / b.wall_s) / (a.done / a.wall_s) for a, b in zip(one, two, strict=True))
    lines = [
        f"`/chat/invoke`, instant double, {args.clients} connections, {args.rounds} rounds of {args.requests} "
        "requests per side",
        "",
        "| | 1 worker (server pinned to core 1; clients and double to core 0) | 2 workers (unpinned) | 2 / 1 |",
        "|---|---|---|---|",
        f"| requests/s, median of rounds | {rate['1 worker']:.0f} | {rate['2 workers']:.0f} | "
        f"**{rate['2 workers'] / rate['1 worker']:.2f}** (paired rounds {paired:.2f}) |",
        "| requests/s, rounds | " + " | ".join(" ".join(f"{o.done / o.wall_s:.0f}" for o in r) for r in (one, two))
        + " | |",
    ]  # fmt: skip
    for name in ("server", "double", "load generator", "other work"):
        lines.append(f"| {name} CPU, cores | {_cores(one, name)} | {_cores(two, name)} | |")
    share = statistics.median(o.cores["busiest worker"] for o in two)
    lines.append(f"| busiest worker's share of the workers' CPU | | {share:.0%} | 50% even |")
    for q in (50, 99):
        cells = [f"{percentile([d for o in r for d in o.durations], q) * 1000:.0f} ms" for r in (one, two)]
        lines.append(f"| latency p{q} | {cells[0]} | {cells[1]} | |")
    return lines


def report_streams(results: dict[str, list[Outcome]], args: argparse.Namespace) -> list[str]:
    one, two = results["1 worker"], results["2 workers"]
    ideal_rate = args.streams / GENERATION_S
    lines = [
        f"{args.streams} concurrent `/chat/stream`, each {CHUNKS} chunks over {GENERATION_S:g} s from the double, "
        f"{args.stream_rounds} rounds per side",
        "",
        "| | 1 worker (pinned as above) | 2 workers (unpinned) | ideal |",
        "|---|---|---|---|",
    ]
    wall = {label: statistics.median(o.wall_s for o in runs) for label, runs in results.items()}
    lines.append(
        f"| all done in, median | {wall['1 worker']:.2f} s | {wall['2 workers']:.2f} s | {GENERATION_S:.2f} s |"
    )
    lines.append(
        f"| streams/s | {args.streams / wall['1 worker']:.0f} | {args.streams / wall['2 workers']:.0f} | "
        f"{ideal_rate:.0f} |"
    )
    lines.append(
        f"| share of ideal | **{GENERATION_S / wall['1 worker']:.0%}** | **{GENERATION_S / wall['2 workers']:.0%}** "
        "| 100% |"
    )
    lines.append("| rounds, s | " + " | ".join(" ".join(f"{o.wall_s:.2f}" for o in r) for r in (one, two)) + " | |")
    for q in (50, 99):
        cells = [f"{percentile([d for o in r for d in o.durations], q):.2f} s" for r in (one, two)]
        lines.append(f"| stream p{q} | {cells[0]} | {cells[1]} | {GENERATION_S:.2f} s |")
    for name in ("server", "double", "load generator", "other work"):
        lines.append(f"| {name} CPU, cores | {_cores(one, name)} | {_cores(two, name)} | |")
    share = statistics.median(o.cores["busiest worker"] for o in two)
    lines.append(f"| busiest worker's share of the workers' CPU | | {share:.0%} | 50% even |")
    return lines


def start_sides(stack: ExitStack, folder: Path, double_url: str) -> list[Side]:
    one = stack.enter_context(ours(folder / "1", double_url))
    two = stack.enter_context(ours(folder / "2", double_url, "--workers", "2"))
    return [Side("1 worker", one, pinned=True), Side("2 workers", two, pinned=False)]


async def measure_invoke(args: argparse.Namespace, folder: Path) -> dict[str, list[Outcome]]:
    with double_process(seed=1, rate=0.0, delay_s=0.0) as (double_url, double_pid), ExitStack() as stack:
        sides = start_sides(stack, folder / "invoke", double_url)
        results: dict[str, list[Outcome]] = {side.label: [] for side in sides}
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        clients = {s.label: httpx.AsyncClient(base_url=s.server.url, timeout=60, limits=limits) for s in sides}
        try:
            for side in sides:  # warm up: connections, caches, every worker's first builds
                await invoke_round(side, double_pid, clients[side.label], args.clients * 4, args.clients)
            for r in range(args.rounds):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    done = await invoke_round(side, double_pid, clients[side.label], args.requests, args.clients)
                    results[side.label].append(done)
                print(f"invoke round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        finally:
            for client in clients.values():
                await client.aclose()
            pin(os.getpid(), ALL_CPUS, children=False)
    return results


async def measure_streams(args: argparse.Namespace, folder: Path) -> dict[str, list[Outcome]]:
    with slow_double_process() as (double_url, double_pid), ExitStack() as stack:
        sides = start_sides(stack, folder / "stream", double_url)
        results: dict[str, list[Outcome]] = {side.label: [] for side in sides}
        # httpx's pool does work in proportion to its connections whenever one is released: one pool
        # of 256 kept the load generator busy for seconds after the server was done; pools of 16 do not.
        size = POOL_CONNECTIONS
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        count = -(-args.streams // size)
        pools = {
            s.label: [httpx.AsyncClient(base_url=s.server.url, timeout=120, limits=limits) for _ in range(count)]
            for s in sides
        }
        try:
            for side in sides:  # warm up, with a smaller crowd
                await stream_round(side, double_pid, pools[side.label], min(args.streams, 32))
            for r in range(args.stream_rounds):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    results[side.label].append(await stream_round(side, double_pid, pools[side.label], args.streams))
                print(f"stream round {r + 1}/{args.stream_rounds} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        finally:
            for client in (c for side_pools in pools.values() for c in side_pools):
                await client.aclose()
            pin(os.getpid(), ALL_CPUS, children=False)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="invoke rounds per side")
    parser.add_argument("--requests", type=int, default=1000, help="invoke requests per round")
    parser.add_argument("--clients", type=int, default=32, help="invoke connections")
    parser.add_argument("--streams", type=int, default=256, help="concurrent streams per round")
    parser.add_argument("--stream-rounds", type=int, default=3)
    parser.add_argument("--skip-invoke", action="store_true")
    parser.add_argument("--skip-streams", action="store_true")
    parser.add_argument("--wait-load", type=float, default=None, help="first wait for a 1-minute load under this")
    parser.add_argument("--wait-max", type=float, default=1800, help="longest wait for --wait-load, seconds")
    args = parser.parse_args(argv)
    if os.sched_getaffinity(0) != ALL_CPUS:
        parser.error(f"this benchmark pins to cores {sorted(ALL_CPUS)}; this process may use {os.sched_getaffinity(0)}")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    start = os.getloadavg()
    lines: list[str] = []
    if not args.skip_invoke:
        lines += [*report_invoke(asyncio.run(measure_invoke(args, folder)), args), ""]
    if not args.skip_streams:
        lines += [*report_streams(asyncio.run(measure_streams(args, folder)), args), ""]
    end = os.getloadavg()
    loads = [" ".join(f"{x:.2f}" for x in load) for load in (start, end)]
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average {loads[0]} at the start, "
          f"{loads[1]} at the end\n")  # fmt: skip
    print("\n".join(lines))
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
