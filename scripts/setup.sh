#!/usr/bin/env bash
# Idempotent setup: a virtual environment with pinned dependencies (llama-cpp-python compiled once,
# then served from pip's wheel cache), then the data and the local model. Fast when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.bilevel-installed

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi

want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "==> installing pinned dependencies (first time: ~2 min, plus ~9 min to compile llama-cpp-python on 2 cores)"
  "$VENV/bin/python" -m pip install --quiet --upgrade "pip==26.3"
  # llama-cpp-python has no wheel on PyPI: it compiles once, then pip's cache serves the wheel.
  CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" "$VENV/bin/python" -m pip install \
      --progress-bar on -c constraints.txt -e ".[local,dev]"
  echo "$want" > "$STAMP"
fi

# Data (corpus) and the local model: provisioned once into the user cache, verified by sha256.
"$VENV/bin/bilevel" setup "$@"
