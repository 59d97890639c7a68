"""The local engine's own process: one ``LocalEngine`` behind a Unix socket.

    python -m providers.engine_server --socket PATH --model PATH [--threads N] ...

llama.cpp runs native code that can crash (a segfault, an abort, an instruction the CPU does not
grant): here a crash ends this process only, and ``EngineSupervisor`` starts a new one. Every
uvicorn worker of a server talks to the same process, so they share one model, one queue and the
cores. One connection carries one request, in JSON lines. Not HTTP: a client cancels by closing
its socket, which nothing on either side can delay (an HTTP client's cleanup of a cancelled
request can be held up; the engine then generated on for nobody).

- ``{"op": "generate", "messages": [...], "params": {...}, "caller": key}``: one line per ``Piece``,
  or a last line ``{"error": cause, "message": ...}``; a client that closes its end stops the
  generation. ``caller`` (the API key's id; ``anonymous`` when absent) is whose lane of the fair
  queue the request waits in (``providers.local_engine``).
- ``{"op": "status"}``: one line: queue (places taken, capacity, callers with a place, requests
  refused, shed and withdrawn), generations, the instruction sets llama.cpp was built with.

The process loads the model before it listens, writes ``ready`` to stdout once it does, and exits
when its parent goes away (the parent-death signal on Linux, and end of file on stdin anywhere).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
import threading
from asyncio import StreamReader, StreamWriter
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from errors import ProviderError
from providers.local_engine import ANONYMOUS, LocalEngine

logger = logging.getLogger("llm_server.engine")

READY = b"ready\n"
_PR_SET_PDEATHSIG = 1


def instruction_sets(system_info: str) -> list[str]:
    """The CPU features llama.cpp reports as used, from its system info line
    (``CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | ...``)."""
    used = []
    for part in system_info.replace(";", "|").split("|"):
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if name and value.strip() == "1":
            used.append(name)
    return used


def system_info() -> str:
    import llama_cpp

    return bytes(llama_cpp.llama_print_system_info()).decode("utf-8", "replace").strip()


async def _lines(engine: LocalEngine, request: dict[str, Any]) -> AsyncIterator[bytes]:
    try:
        caller = str(request.get("caller") or ANONYMOUS)
        async for piece in engine.astream(request["messages"], request.get("params") or {}, caller):
            yield json.dumps(asdict(piece)).encode() + b"\n"
    except ProviderError as exc:
        failure = {"error": exc.cause.value, "message": str(exc), "retry_after": exc.retry_after}
        yield json.dumps(failure).encode() + b"\n"


async def _answer(engine: LocalEngine, request: dict[str, Any], reader: StreamReader, writer: StreamWriter) -> None:
    """Stream the answer until it ends or the client hangs up, whichever comes first: a client that
    closes its end stops the generation (or takes it out of the queue) at once."""

    async def send() -> None:
        async for line in _lines(engine, request):
            writer.write(line)
            await writer.drain()

    sending = asyncio.ensure_future(send())
    gone = asyncio.ensure_future(reader.read(1))  # b"" once the client closed its end
    try:
        await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sending.cancel()
        gone.cancel()
        await asyncio.gather(sending, gone, return_exceptions=True)


def status_report(engine: LocalEngine, info: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "model": engine.model_path.name if engine.model_path else None,
        "queue": {
            "waiting": engine.waiting,
            "capacity": engine.queue_size,
            "callers": engine.fair_queue.callers,
            **asdict(engine.fair_queue.counts),
        },
        "generations": asdict(engine.generations),
        "instruction_sets": instruction_sets(info),
        "system_info": info,
    }


async def serve(engine: LocalEngine, info: str, socket_path: Path) -> None:
    async def handle(reader: StreamReader, writer: StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            if request.get("op") == "status":
                writer.write(json.dumps(status_report(engine, info)).encode() + b"\n")
                await writer.drain()
            else:
                await _answer(engine, request, reader, writer)
        except (ConnectionError, ValueError, KeyError):
            pass  # a client that left or sent nonsense: nobody to answer
        except asyncio.CancelledError:
            pass  # the engine is stopping; asyncio would log this connection's task as failed
        finally:
            writer.close()

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    server = await asyncio.start_unix_server(handle, path=str(socket_path))
    async with server:
        sys.stdout.buffer.write(READY)  # the supervisor waits for this line: no polling
        sys.stdout.buffer.flush()
        await stopping.wait()


def _die_with_parent(parent: int) -> None:
    """Exit when the supervising process is gone, even if it was SIGKILLed and could not say so."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(0)

    def watch_stdin() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)  # the parent's end of the pipe closed

    threading.Thread(target=watch_stdin, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The local model's process (started by the server).")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--context-tokens", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--queue-size", type=int, default=16)
    parser.add_argument("--queue-timeout-s", type=float, default=60.0)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    # Ctrl+C reaches the whole process group: the server stops, then it stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.parent_pid is not None:
        _die_with_parent(args.parent_pid)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        engine = LocalEngine(
            args.model,
            context_tokens=args.context_tokens,
            threads=args.threads,
            queue_size=args.queue_size,
            queue_timeout_s=args.queue_timeout_s,
        )
        engine.warm_up()
        info = system_info()
        logger.info("local engine %d: %s loaded; CPU features in use: %s", os.getpid(), args.model.name, info)
        asyncio.run(serve(engine, info, args.socket))
        engine.close()
    except Exception:
        logger.exception("the local engine failed")
        os._exit(1)
    # Both without the interpreter's shutdown: the stdin watcher holds stdin's lock there, and
    # Python would abort (SIGABRT), which the supervisor would report as a crash.
    os._exit(0)


if __name__ == "__main__":
    main()
