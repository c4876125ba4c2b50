#!/usr/bin/env bash
# gpu_check.sh: the one-GPU check of issue 16 (benchmarks/gpu_check.py says what it measures).
# Purpose: training tokens/s, MFU and peak memory of STP, Meta n=4 and DeepSeek D=1 at ~125M
#   parameters in bf16 under DeepSpeed, their ratios over STP, and 20 HumanEval problems
#   through the evaluate stage, on one CUDA GPU in under 8 minutes.
# Command: bash benchmarks/gpu_check.sh [--cpu] [--steps N] [--problems N] [--unsafe-no-sandbox]
#   --cpu runs a tiny shape on CPU in about a minute (tests/test_gpu_check.py runs it in CI).
# A fresh CUDA machine may lack deepspeed, lm-eval and mlflow: put their wheels (and this
#   package's) in ./wheels and they are installed from there, offline, before the check.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [[ -z "$python" ]]; then
  if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi

if [[ -d wheels ]] && ! "$python" -c "import deepspeed, lm_eval" 2>/dev/null; then
  "$python" -m pip install --quiet --no-index --find-links wheels deepspeed lm_eval accelerate
fi

if [[ " $* " == *" --cpu "* ]]; then
  export DS_ACCELERATOR=cpu OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$python" benchmarks/gpu_check.py "$@"
