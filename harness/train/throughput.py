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

# Dense (no sparsity) peak FLOP/s per GPU from the vendors' datasheets, by family: the same
# chip name covers parts with different clocks and power (H100 SXM 989 TFLOP/s bf16, PCIe
# 756, NVL 835), so a family is matched exactly, most specific first, never by substring
# alone. "fp32" is the CUDA-core peak; "tf32" the tensor-core peak an fp32 recipe runs at
# once TF32 is on (`harness.devices.use_tf32`).
_P = 1e12
GPU_PEAK: dict[str, dict[str, float]] = {
    "B200": {"bf16": 2250 * _P, "fp16": 2250 * _P, "tf32": 1100 * _P, "fp32": 75 * _P},
    "GH200": {"bf16": 989 * _P, "fp16": 989 * _P, "tf32": 495 * _P, "fp32": 67 * _P},
    "H200 NVL": {"bf16": 835 * _P, "fp16": 835 * _P, "tf32": 418 * _P, "fp32": 60 * _P},
    "H200": {"bf16": 989 * _P, "fp16": 989 * _P, "tf32": 495 * _P, "fp32": 67 * _P},
    "H100 NVL": {"bf16": 835 * _P, "fp16": 835 * _P, "tf32": 418 * _P, "fp32": 60 * _P},
    "H100 PCIe": {"bf16": 756 * _P, "fp16": 756 * _P, "tf32": 378 * _P, "fp32": 51 * _P},
    "H100 SXM": {"bf16": 989 * _P, "fp16": 989 * _P, "tf32": 495 * _P, "fp32": 67 * _P},
    "H800 PCIe": {"bf16": 756 * _P, "fp16": 756 * _P, "tf32": 378 * _P, "fp32": 51 * _P},
    "H800 SXM": {"bf16": 989 * _P, "fp16": 989 * _P, "tf32": 495 * _P, "fp32": 67 * _P},
    "H20": {"bf16": 148 * _P, "fp16": 148 * _P, "tf32": 74 * _P, "fp32": 44 * _P},
    "A100": {"bf16": 312 * _P, "fp16": 312 * _P, "tf32": 156 * _P, "fp32": 19.5 * _P},
    "A800": {"bf16": 312 * _P, "fp16": 312 * _P, "tf32": 156 * _P, "fp32": 19.5 * _P},
    "L40S": {"bf16": 362 * _P, "fp16": 362 * _P, "tf32": 183 * _P, "fp32": 91.6 * _P},
    "L40": {"bf16": 181 * _P, "fp16": 181 * _P, "tf32": 90.5 * _P, "fp32": 90.5 * _P},
}
# Memory per GPU by family (GiB, datasheets; GPU memory is sold in binary units): what
# `harness plan` checks a recipe's peak against. A100 and GH200 also ship with 40 and 144 GB;
# `harness plan --gpu-memory` says which one you have.
GPU_MEMORY_GIB: dict[str, float] = {
    "B200": 180, "GH200": 96, "H200 NVL": 141, "H200": 141, "H100 NVL": 94, "H100 PCIe": 80, "H100 SXM": 80,
    "H800 PCIe": 80, "H800 SXM": 80, "H20": 96, "A100": 80, "A800": 80, "L40S": 48, "L40": 48,
}
# (pattern over the upper-cased `torch.cuda.get_device_name()`, family), first match wins.
# Names as drivers report them: "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe",
# "NVIDIA H100 NVL", "NVIDIA H800", "NVIDIA B200", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S".
_FAMILIES = [
    (r"\bB200\b", "B200"),
    (r"\bGH200\b", "GH200"),
    (r"\bH200\b.*\bNVL\b", "H200 NVL"),
    (r"\bH200\b", "H200"),
    (r"\bH100\b.*\bNVL\b", "H100 NVL"),
    (r"\bH100\b.*\bPCIE\b", "H100 PCIe"),
    (r"\bH100\b", "H100 SXM"),
    (r"\bH800\b.*\bPCIE\b", "H800 PCIe"),
    (r"\bH800\b", "H800 SXM"),
    (r"\bH20\b", "H20"),
    (r"\bA100\b", "A100"),
    (r"\bA800\b", "A800"),
    (r"\bL40S\b", "L40S"),
    (r"\bL40\b", "L40"),
]


def gpu_family(name: str) -> str | None:
    """The datasheet family of a CUDA device name, or None when we hold no figure for it."""
    upper = name.upper().replace("-", " ")
    return next((family for pattern, family in _FAMILIES if re.search(pattern, upper)), None)


def gpu_peak(name: str, precision: str) -> float | None:
    family = gpu_family(name)
    return GPU_PEAK[family][precision] if family else None


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


def peak_flops(precision: str, device="cpu", tf32: bool = False) -> float | None:
    """Dense peak FLOP/s of the device one rank runs on; `tf32`: fp32 products run on TF32
    tensor cores (`harness.devices.use_tf32`). None for a GPU we hold no figure for."""
    if "MTP_HARNESS_PEAK_FLOPS" in os.environ:
        return float(os.environ["MTP_HARNESS_PEAK_FLOPS"])
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return gpu_peak(torch.cuda.get_device_name(device), "tf32" if tf32 and precision == "fp32" else precision)
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
