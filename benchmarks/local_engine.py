"""The local engine: generation speed of the installed llama.cpp build, and what a crash costs.

    python benchmarks/local_engine.py [--compare /path/to/other/venv/bin/python] [--rounds 5]

1. Tokens per second: the same prompt, 128 tokens (end of turn banned, temperature 0), 2 threads,
   in a fresh process per round. With ``--compare``, rounds alternate between this interpreter's
   llama.cpp and the other one's (for example a venv holding a native build), so both are measured
   side by side on the same noisy machine.
2. A crash: the engine process is killed (SIGSEGV, SIGKILL) after the first token of a stream;
   measured are the time from the kill until the caller's stream fails, and until the restarted
   engine streams its first token again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from errors import ProviderError
from providers.engine_supervisor import EngineSupervisor
from settings import Settings
from wiring.models import engine_client, engine_options

MESSAGES = [{"role": "user", "content": "Tell me a long story about a dragon who learns to bake bread."}]
SPEED = """
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=2, verbose=False)
messages = json.loads(sys.argv[2])
llm.create_chat_completion(messages=messages, max_tokens=8)
began = time.perf_counter()
out = llm.create_chat_completion(messages=messages, max_tokens=128, temperature=0.0, logit_bias={2: -100.0})
print(json.dumps({"tokens": out["usage"]["completion_tokens"], "seconds": time.perf_counter() - began}))
"""


def tokens_per_second(python: str, model: Path) -> float:
    result = subprocess.run(
        [python, "-c", SPEED, str(model), json.dumps(MESSAGES)], capture_output=True, text=True, check=True
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return float(measured["tokens"] / measured["seconds"])


async def crash_cost(how: signal.Signals, rounds: int) -> tuple[list[float], list[float]]:
    settings = Settings(_env_file=None)
    options = engine_options(settings)
    assert options is not None, "no local model file: run bash scripts/setup.sh"
    supervisor = EngineSupervisor(options)
    supervisor.start()
    client = engine_client(settings, supervisor.folder)
    failed_after, back_after = [], []
    try:
        assert supervisor.wait_ready()
        for restarts in range(1, rounds + 1):
            stream = client.astream(MESSAGES, {"max_tokens": 256, "logit_bias": {2: -100.0}})
            await anext(stream)
            killed = time.perf_counter()
            os.kill(supervisor.pid or 0, how)
            try:
                async for _ in stream:
                    pass
                raise AssertionError("the stream survived the kill")
            except ProviderError as exc:
                assert exc.cause == "engine_crashed", exc
            failed_after.append(time.perf_counter() - killed)
            await asyncio.to_thread(supervisor.wait_ready, restarts)
            again = client.astream(MESSAGES, {"max_tokens": 4})
            await anext(again)
            back_after.append(time.perf_counter() - killed)
            await again.aclose()
    finally:
        supervisor.stop()
    return failed_after, back_after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", help="another Python whose llama_cpp build to measure side by side")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = Settings(_env_file=None).resolved_local_model_path()
    assert model is not None

    builds = {"this": sys.executable, **({"other": args.compare} if args.compare else {})}
    speeds: dict[str, list[float]] = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, python in builds.items():
            speeds[name].append(tokens_per_second(python, model))
    for name, values in speeds.items():
        print(f"tokens/s, {name} build ({builds[name]}): median {statistics.median(values):.1f}, "
              f"range {min(values):.1f} to {max(values):.1f}")  # fmt: skip
    if args.compare:
        print(f"ratio this/other: {statistics.median(speeds['this']) / statistics.median(speeds['other']):.2f}")

    for how in (signal.SIGSEGV, signal.SIGKILL):
        failed, back = asyncio.run(crash_cost(how, args.rounds))
        # Crashes in a row double the restart backoff (0.2 s, 0.4 s, ...): the first is a lone crash.
        in_a_row = ", ".join(f"{b * 1000:.0f}" for b in back[1:])
        print(f"{how.name}: the caller's stream failed {statistics.median(failed) * 1000:.1f} ms after the kill "
              f"(max {max(failed) * 1000:.1f}); the engine streamed again {back[0] * 1000:.0f} ms after a "
              f"first crash, then {in_a_row} ms for crashes in a row")  # fmt: skip


if __name__ == "__main__":
    main()
