"""Resuming at another world size: DeepSpeed's universal checkpoint.

ZeRO >= 1 partitions the optimizer state by data-parallel rank, so a checkpoint saved by N
processes cannot be loaded by M != N (DeepSpeed raises ZeRORuntimeException), which is what
a requeued Slurm job on fewer nodes would do. DeepSpeed's own converter
(`python -m deepspeed.checkpoint.ds_to_universal`) rewrites it per parameter, and an engine
built with `checkpoint.load_universal` loads that at any world size (ENV-NOTES). Rank 0
converts into `checkpoints/.tmp-universal/<tag>/` (the converter writes `latest_universal`
beside its output folder) and renames the folder to `checkpoints/universal/`;
the conversion is derived data and is removed once loaded. Our checkpoints carry no
`universal_checkpoint_info` of their own, so the converter is asked to inject the default.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.errors import HarnessError, one_line
from harness.ranks import barrier, main_decides

UNIVERSAL_DIR = "universal"


def convert(ckpt_dir: Path, resume, world_size: int, *, is_main: bool, log=print) -> Path:
    """The DeepSpeed load directory holding `resume.tag` in universal form (every rank)."""
    out = ckpt_dir / UNIVERSAL_DIR

    def work() -> None:
        log(f"checkpoint {resume.tag} was saved by {resume.saved_world_size} process(es); this run has "
            f"{world_size}: converting it to DeepSpeed's universal checkpoint")
        _convert(ckpt_dir, resume.tag, out)

    main_decides(work, is_main=is_main)
    return out


def _convert(ckpt_dir: Path, tag: str, out: Path) -> None:
    staging = ckpt_dir / ".tmp-universal"
    shutil.rmtree(staging, ignore_errors=True)
    workers = str(max(1, min(4, os.cpu_count() or 1)))
    argv = [sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder", str(ckpt_dir / tag),
            "--output_folder", str(staging / tag), "--inject_missing_state",
            "--num_extract_workers", workers, "--num_merge_workers", workers]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode or not (staging / tag).is_dir():
            last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), f"exit {proc.returncode}")
            raise HarnessError(
                f"checkpoint {ckpt_dir / tag} cannot be converted for another number of processes "
                f"(ds_to_universal: {one_line(last)[:300]}); it is kept as it is",
                fix="resume with the number of processes it was saved with",
            )
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove(ckpt_dir: Path, *, is_main: bool) -> None:
    """After every rank has loaded it."""
    barrier()
    if is_main:
        shutil.rmtree(ckpt_dir / UNIVERSAL_DIR, ignore_errors=True)
