#!/usr/bin/env bash
# Set up (first run only) and run lint, type checks and the whole test suite.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k fallback
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
