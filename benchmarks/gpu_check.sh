#!/usr/bin/env bash
# The check to run the day a GPU is lent: naive vs engine on the embedded model, the engine on a
# 1.7B-parameter Llama shape in bf16 (tokens/s, MFU against a matmul peak measured in the same
# run), bf16 vs fp32 score agreement and the tokenizing share of the datatrove scorer. About 8
# minutes on one H100-class card, nothing downloaded; one JSON under benchmarks/results/.
#
#   benchmarks/gpu_check.sh               # on a machine with a CUDA GPU
#   benchmarks/gpu_check.sh --cpu-smoke   # the same steps at toy sizes on the CPU (CI)
#
# PYTHON selects the interpreter (default: .venv/bin/python when present, else python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
