"""The process group starts on the rank's own GPU (NCCL's object collectives use the current
device, cuda:0 on every rank until set), with a collective timeout a cluster can set."""

from __future__ import annotations

from datetime import timedelta

import deepspeed
import pytest
import torch

from harness.errors import HarnessError
from harness.train import distributed
from tests.conftest import RANK_VARS


@pytest.fixture
def rank_3_of_16(monkeypatch):
    for key in RANK_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RANK", "11")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.delenv("MTP_HARNESS_DEVICE", raising=False)


def test_the_gpu_is_pinned_to_the_local_rank_before_the_group_starts(rank_3_of_16, monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: events.append(("set_device", torch.device(device))))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(deepspeed, "init_distributed",
                        lambda dist_backend=None, timeout=None, **kw: events.append(("init", dist_backend, timeout)))
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "90")
    dist = distributed.init_distributed("bf16")
    assert (dist.rank, dist.local_rank, dist.world_size) == (11, 3, 16)
    assert events == [("set_device", torch.device("cuda", 3)), ("init", "nccl", timedelta(minutes=90))]


def test_a_bf16_group_without_cuda_is_refused_before_it_starts(rank_3_of_16, monkeypatch):
    started = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(deepspeed, "init_distributed", lambda **kw: started.append(kw))
    with pytest.raises(HarnessError, match="train.precision=bf16 asks for GPUs"):
        distributed.init_distributed("bf16")
    assert started == []


@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_a_bad_collective_timeout_is_one_line(monkeypatch, value):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(HarnessError, match="not a positive number of minutes"):
        distributed.collective_timeout()


def test_the_default_timeout_outlasts_deepspeeds_ten_minutes(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.collective_timeout() > timedelta(minutes=10)
