#!/usr/bin/env bash
# Set up (first run only) and start the server on http://127.0.0.1:8000 with the embedded model.
# Extra arguments go to server.py, e.g.: bash scripts/serve.sh --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python server.py "$@"
