"""Throughput and an estimate of model FLOPs utilisation (MFU) for the progress display.

MFU needs the hardware's peak. For GPUs we use the vendor's dense bf16/fp32 figures; for
CPUs we estimate cores x clock x FLOPs per cycle from the vector units /proc/cpuinfo
lists (FMA: 2 FLOPs per lane; AVX-512 16 fp32 lanes x 2 units, AVX2 8 lanes x 2 units).
It is an estimate and is labelled as one; `MTP_HARNESS_PEAK_FLOPS` overrides it.

`peak_flops` is one rank's device (one GPU, or the CPU threads one process uses); the
loop's tokens/s counts every rank, so MFU divides by world size x this peak
(`harness.train.loop.mfu`).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

# Dense peak per device (vendor datasheets), by precision.
GPU_PEAK = {
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
}


def cpu_peak_flops(threads: int) -> float | None:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    mhz = re.search(r"cpu MHz\s*:\s*([\d.]+)", info)
    if not mhz:
        return None
    flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split()) if "flags" in info else set()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    per_cycle = lanes * (2 if "fma" in flags or "avx512f" in flags else 1) * 2  # two vector units
    return threads * float(mhz.group(1)) * 1e6 * per_cycle


def peak_flops(precision: str) -> float | None:
    """Dense peak FLOP/s of the device one rank runs on."""
    if "MTP_HARNESS_PEAK_FLOPS" in os.environ:
        return float(os.environ["MTP_HARNESS_PEAK_FLOPS"])
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, table in GPU_PEAK.items():
            if key in name:
                return table[precision]
        return None
    return cpu_peak_flops(torch.get_num_threads())


class Meter:
    """Tokens per second over a sliding window of steps (the first step warms caches)."""

    def __init__(self, window: int = 20):
        self.window = window
        self.marks: list[tuple[float, int]] = []

    def mark(self, tokens_seen: int) -> float | None:
        self.marks.append((time.perf_counter(), tokens_seen))
        self.marks = self.marks[-self.window :]
        if len(self.marks) < 2:
            return None
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None
