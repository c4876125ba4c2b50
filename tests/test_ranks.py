"""Collectives' tensors sit on the process group's device: NCCL has no CPU path."""

from __future__ import annotations

import torch
import torch.distributed as td

from harness.ranks import group_device


def test_nccl_collectives_use_the_current_cuda_device(monkeypatch):
    monkeypatch.setattr(td, "is_initialized", lambda: True)
    monkeypatch.setattr(td, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 5)  # set to LOCAL_RANK by train.distributed
    assert group_device() == torch.device("cuda", 5)


def test_gloo_and_no_group_use_the_cpu(monkeypatch):
    assert group_device() == torch.device("cpu")
    monkeypatch.setattr(td, "is_initialized", lambda: True)
    monkeypatch.setattr(td, "get_backend", lambda group=None: "gloo")
    assert group_device() == torch.device("cpu")
