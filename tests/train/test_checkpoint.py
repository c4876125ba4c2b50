"""Checkpoints: atomic publication, verification, fallback to the previous one, pruning."""

from __future__ import annotations

import pytest
import torch

from harness.errors import HarnessError
from harness.train import checkpoint
from harness.train.config import TrainConfig
from harness.train.deepspeed_config import build_engine
from harness.train.distributed import init_distributed


@pytest.fixture(scope="module")
def engine():
    init_distributed()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    eng, _, _ = build_engine(model, TrainConfig(steps=10, global_batch_size=2, micro_batch_size=2), 10, 1)
    return eng


def _step(engine):
    loss = engine(torch.ones(2, 4)).pow(2).mean()
    engine.backward(loss)
    engine.step()


def test_corrupted_latest_falls_back_to_previous(engine, tmp_path):
    ckpt = tmp_path / "checkpoints"
    for step in (1, 2):
        _step(engine)
        checkpoint.save(engine, ckpt, step, {"step": step}, is_main=True, keep=5)
    assert (ckpt / "latest").read_text() == "step_000002"
    weights_at_2 = engine.module.weight.detach().clone()
    state_file = next((ckpt / "step_000002").rglob("*model_states.pt"))
    state_file.write_bytes(state_file.read_bytes()[:100])  # truncated, as by a crash or full disk
    _step(engine)
    messages = []
    state = checkpoint.load_latest(engine, ckpt, is_main=True, log=messages.append)
    assert state == {"step": 1}
    assert "step_000002" in messages[0] and "checksum" in messages[0]
    assert (ckpt / "step_000002.corrupt").is_dir()  # kept, not deleted
    assert not torch.equal(engine.module.weight, weights_at_2)


def test_interrupted_save_leaves_previous_intact(engine, tmp_path):
    ckpt = tmp_path / "checkpoints"
    checkpoint.save(engine, ckpt, 5, {"step": 5}, is_main=True, keep=5)
    (ckpt / ".tmp-step_000006" / "step_000006").mkdir(parents=True)  # a crash mid-write
    assert checkpoint.load_latest(engine, ckpt, is_main=True) == {"step": 5}
    checkpoint.save(engine, ckpt, 6, {"step": 6}, is_main=True, keep=5)
    assert not (ckpt / ".tmp-step_000006").exists()
    assert checkpoint.verify(ckpt / "step_000006") is None


def test_keep_prunes_old_checkpoints(engine, tmp_path):
    ckpt = tmp_path / "checkpoints"
    for step in range(1, 5):
        checkpoint.save(engine, ckpt, step, {"step": step}, is_main=True, keep=2)
    assert sorted(p.name for p in ckpt.iterdir() if p.is_dir()) == ["step_000003", "step_000004"]


def test_no_checkpoint_and_identity_check(engine, tmp_path):
    assert checkpoint.load_latest(engine, tmp_path / "none", is_main=True) is None
    with pytest.raises(HarnessError, match="manifest_hash"):
        checkpoint.check_identity({"manifest_hash": "aaaa"}, {"manifest_hash": "bbbb"})
