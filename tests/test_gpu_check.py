"""benchmarks/gpu_check.sh keeps working without a GPU: its --cpu mode runs every part."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_passes_shellcheck():
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.slow
def test_cpu_mode_trains_every_arm_and_evaluates(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "MTP_HARNESS_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(["bash", str(SCRIPT), "--cpu", "--steps", "2"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    for arm in ("stp", "meta_n4", "deepseek_d1"):
        assert f"\n  {arm} " in out
    assert "meta_n4 over stp: step time" in out and "deepseek_d1 over stp: step time" in out
    assert "evaluate stage: 2 HumanEval problems" in out and "gpu_check done" in out


def test_no_gpu_is_one_clear_line(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode != 0 and "no CUDA device; run with --cpu" in done.stderr
