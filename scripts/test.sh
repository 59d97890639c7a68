#!/usr/bin/env bash
# Set up (first run only) and run lint, type checks and the whole test suite (what CI runs).
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k fallback
# The inner loop: bash scripts/test.sh fast [pytest args] runs only the unit and service tiers
# (tests/unit, tests/service) on every core (pytest-xdist), no setup, lint or types; tests/system is
# left to the full run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "fast" ]]; then
    shift
    # Each xdist worker runs its own engine: with one llama.cpp thread each, engines and workers
    # do not oversubscribe the cores (measured on 2 cores: 57 s wall against 70 s).
    export LLM_SERVER_LOCAL_THREADS="${LLM_SERVER_LOCAL_THREADS:-1}"
    exec .venv/bin/python -m pytest -q -n auto -m "unit or service" tests/unit tests/service "$@"
fi
bash scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
