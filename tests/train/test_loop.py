"""The step loop against an engine on another device than the loader's (the `meta` device
stands in for a GPU): batches reach the engine's device, reductions the group's device, and
the host reads the losses once per optimizer step, not once per micro-batch and depth."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as td

from harness.model.objectives.base import ModelOutput
from harness.train import loop

PARTS = ["depth_1", "depth_2", "depth_3"]


class FakeEngine:
    """DeepSpeed's engine as the loop sees it: the module lives on `device`, and (like
    DeepSpeed) the inputs are not moved for it. Losses come back as CPU tensors, so the
    test can read them; only where the inputs were matters."""

    def __init__(self, device: str = "meta"):
        self.device = torch.device(device)
        self.calls, self.steps = [], 0

    def __call__(self, rows, tokens_seen: int = 0):
        assert rows.device == self.device, f"the batch reached the engine on {rows.device}, not {self.device}"
        self.calls.append(rows.shape)
        n = len(self.calls)
        losses = {key: torch.tensor(1.0 + n + depth) for depth, key in enumerate(PARTS)}
        return ModelOutput(loss=sum(losses.values()), losses=losses, n_targets={key: 10 * n for key in PARTS})

    def backward(self, loss):
        pass

    def step(self):
        self.steps += 1

    def eval(self):
        pass

    def train(self):
        pass


@pytest.fixture
def host_reads(monkeypatch):
    """Counts the ways a tensor's value reaches Python (each waits for the device)."""
    counter = {"n": 0}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counter["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counter


def test_training_batches_reach_the_engines_device():
    engine = FakeEngine("meta")
    rows = torch.zeros(8, 5, dtype=torch.long)  # what the loader gives: CPU rows
    metrics = loop._optimizer_step(engine, rows, micro_batch_size=2, tokens_seen=0, world_size=1)
    assert engine.steps == 4 and engine.calls == [torch.Size([2, 5])] * 4
    assert metrics["loss/depth_1"] == pytest.approx((2 + 3 + 4 + 5) / 4)  # mean over micro-batches
    assert metrics["loss/total"] == pytest.approx(sum(metrics[f"loss/{k}"] for k in PARTS))


def test_validation_batches_reach_the_engines_device():
    engine = FakeEngine("meta")
    batches = [torch.zeros(2, 5, dtype=torch.long) for _ in range(3)]
    val = loop.validate(engine, batches, SimpleNamespace(rank=0, world_size=1), PARTS)
    # weighted by target counts 10, 20, 30: (2*10 + 3*20 + 4*30) / 60
    assert val["val/depth_1"] == pytest.approx(200 / 60)
    assert set(val) == {f"val/{k}" for k in PARTS}


def test_one_host_read_per_optimizer_step_and_per_validation(host_reads):
    engine = FakeEngine("cpu")
    loop._optimizer_step(engine, torch.zeros(8, 5, dtype=torch.long), 2, 0, 1)  # 4 micro-batches x 4 losses
    assert host_reads["n"] == 1
    host_reads["n"] = 0
    loop.validate(engine, [torch.zeros(2, 5, dtype=torch.long)] * 3, SimpleNamespace(rank=0, world_size=1), PARTS)
    assert host_reads["n"] == 1


def test_step_losses_are_the_same_numbers_as_reading_each_one():
    """The device-side sums are the float64 arithmetic of float(loss) / n summed in Python."""
    engine = FakeEngine("cpu")
    got = loop._optimizer_step(engine, torch.zeros(6, 5, dtype=torch.long), 2, 0, 1)
    expected = sum(float(torch.tensor(1.0 + n)) / 3 for n in (1, 2, 3))
    assert got["loss/depth_1"] == expected  # bit for bit


class _Reduced(Exception):
    pass


def test_the_loss_reduction_runs_on_the_process_groups_device(monkeypatch):
    """NCCL reduces only CUDA tensors: the losses go to the group's device first."""
    seen = []

    def all_reduce(tensor, *args, **kwargs):
        seen.append(tensor.device)
        raise _Reduced  # a meta tensor has no values to read back; where it was is the point

    monkeypatch.setattr(loop, "group_device", lambda: torch.device("meta"))
    monkeypatch.setattr(td, "all_reduce", all_reduce)
    with pytest.raises(_Reduced):
        loop._optimizer_step(FakeEngine("cpu"), torch.zeros(4, 5, dtype=torch.long), 2, 0, world_size=2)
    with pytest.raises(_Reduced):
        loop.validate(FakeEngine("cpu"), [torch.zeros(2, 5, dtype=torch.long)] * 2,
                      SimpleNamespace(rank=1, world_size=2), PARTS)
    assert seen == [torch.device("meta")] * 2
