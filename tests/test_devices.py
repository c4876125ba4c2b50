"""Which device a rank computes on: CUDA when torch sees it, the CPU only for a laptop-sized
run or when asked by name, never a silent fallback; batches reach the chosen device."""

from __future__ import annotations

import pytest
import torch

from harness import devices
from harness.errors import HarnessError


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def gpus(monkeypatch):
    """A node whose process sees 8 GPUs (the CPU build stands in for CUDA's answers)."""
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)


@pytest.mark.parametrize("precision, world_size", [("bf16", 1), ("fp16", 1), ("fp32", 2), ("bf16", 64)])
def test_a_gpu_sized_run_without_cuda_is_refused_not_moved_to_cpu(no_cuda, precision, world_size):
    with pytest.raises(HarnessError) as refused:
        devices.choose(precision, world_size, local_rank=0)
    text = str(refused.value)
    assert "no CUDA device" in text and "not falling back to CPU" in text
    assert "MTP_HARNESS_DEVICE=cpu" in text and "\n" not in text  # one line, with the fix


def test_the_laptop_run_and_an_explicit_cpu_request_use_the_cpu(no_cuda, monkeypatch):
    assert devices.choose("fp32", 1, local_rank=0) == "cpu"
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    assert devices.choose("bf16", 2, local_rank=1) == "cpu"


def test_cuda_by_name_is_required_even_for_a_laptop_run(no_cuda, monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV, "cuda")
    with pytest.raises(HarnessError, match="MTP_HARNESS_DEVICE=cuda asks for GPUs"):
        devices.choose("fp32", 1, local_rank=0)


def test_each_rank_gets_its_local_gpu(gpus):
    assert devices.choose("bf16", 16, local_rank=0) == "cuda:0"
    assert devices.choose("bf16", 16, local_rank=7) == "cuda:7"
    with pytest.raises(HarnessError, match="local rank 8 but this process sees 8 CUDA device"):
        devices.choose("bf16", 16, local_rank=8)


def test_an_unknown_device_request_is_one_line(monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV, "tpu")
    with pytest.raises(HarnessError, match="not one of auto, cuda, cpu"):
        devices.choose("fp32", 1, 0)


def test_a_batch_is_moved_to_the_engines_device():
    rows = torch.arange(6).view(2, 3)
    moved = devices.to_device(rows, torch.device("meta"))  # meta stands in for an accelerator
    assert moved.device.type == "meta" and moved.shape == rows.shape and moved.dtype == rows.dtype
    assert devices.to_device(rows, "cpu") is rows  # already there: no copy


@pytest.fixture
def matmul_precision():
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


def test_tf32_is_on_for_fp32_recipes_on_gpus_only(matmul_precision):
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    assert devices.use_tf32("fp32", "cpu") is False
    assert devices.use_tf32("bf16", "cuda:0") is False
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert devices.use_tf32("fp32", "cuda:3") is True
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"


def test_evaluation_loads_bf16_on_gpus_that_have_it_and_fp32_on_the_cpu(monkeypatch):
    assert devices.inference_dtype("cpu") == "float32"  # CPU numbers as before
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert devices.inference_dtype("cuda:2") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a V100
    assert devices.inference_dtype("cuda:2") == "float32"
