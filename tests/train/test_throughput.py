"""MFU's peak comes from the exact GPU family: H100 PCIe and NVL are not the SXM part, and
H800, H200, B200 and L40S have figures; an fp32 recipe on TF32 is set against the TF32 peak."""

from __future__ import annotations

import pytest
import torch

from harness.train import throughput
from harness.train.throughput import gpu_family, gpu_peak

T = 1e12


@pytest.mark.parametrize("name, family, bf16", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989 * T),
    ("NVIDIA H100 SXM5 80GB", "H100 SXM", 989 * T),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756 * T),
    ("NVIDIA H100 NVL", "H100 NVL", 835 * T),
    ("NVIDIA H800", "H800 SXM", 989 * T),
    ("NVIDIA H800 PCIe", "H800 PCIe", 756 * T),
    ("NVIDIA H200", "H200", 989 * T),
    ("NVIDIA H200 NVL", "H200 NVL", 835 * T),
    ("NVIDIA GH200 480GB", "GH200", 989 * T),
    ("NVIDIA B200", "B200", 2250 * T),
    ("NVIDIA A100-SXM4-80GB", "A100", 312 * T),
    ("NVIDIA A100 80GB PCIe", "A100", 312 * T),
    ("NVIDIA L40S", "L40S", 362 * T),
    ("NVIDIA L40", "L40", 181 * T),
])  # fmt: skip
def test_each_family_gets_its_own_datasheet_peak(name, family, bf16):
    assert gpu_family(name) == family
    assert gpu_peak(name, "bf16") == bf16


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "NVIDIA A10G", "NVIDIA L4", "Tesla V100-SXM2-16GB"])
def test_an_unknown_gpu_gets_no_peak_rather_than_a_neighbours(name):
    assert gpu_family(name) is None and gpu_peak(name, "bf16") is None


def test_the_peak_follows_the_rank_device_and_tf32(monkeypatch):
    monkeypatch.delenv("MTP_HARNESS_PEAK_FLOPS", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert throughput.peak_flops("bf16", "cuda:1") == 756 * T
    assert throughput.peak_flops("fp32", "cuda:1") == 51 * T
    assert throughput.peak_flops("fp32", "cuda:1", tf32=True) == 378 * T
    monkeypatch.setenv("MTP_HARNESS_PEAK_FLOPS", "1e15")
    assert throughput.peak_flops("bf16", "cuda:1") == 1e15
