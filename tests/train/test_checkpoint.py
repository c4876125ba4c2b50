"""Checkpoints: atomic publication, verification, fallback to the previous one, pruning;
corruption and incompatibility told apart; no silent restart; a full disk in one line."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

from harness.errors import HarnessError
from harness.train import checkpoint
from harness.train.config import TrainConfig
from harness.train.deepspeed_config import build_engine
from harness.train.distributed import init_distributed


def _engine(out_features: int = 2):
    init_distributed()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, out_features)
    eng, _, _ = build_engine(model, TrainConfig(steps=10, global_batch_size=2, micro_batch_size=2), 10, 1)
    return eng


@pytest.fixture(scope="module")
def engine():
    return _engine()


def _step(engine):
    loss = engine(torch.ones(2, 4)).pow(2).mean()
    engine.backward(loss)
    engine.step()


def _resume(engine, ckpt, messages=None, full=False):
    """What the training loop does: choose, then load."""
    log = messages.append if messages is not None else print
    resume = checkpoint.choose(ckpt, 1, 0, is_main=True, full=full, log=log)
    if resume is None:
        return None
    return checkpoint.load(engine, ckpt, ckpt, resume, is_main=True, log=log)


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
    state = _resume(engine, ckpt, messages)
    assert state == {"step": 1}
    assert "step_000002" in messages[0] and "truncated" in messages[0]
    assert (ckpt / "step_000002.corrupt").is_dir()  # kept, not deleted
    assert not torch.equal(engine.module.weight, weights_at_2)


def test_interrupted_save_leaves_previous_intact(engine, tmp_path):
    ckpt = tmp_path / "checkpoints"
    checkpoint.save(engine, ckpt, 5, {"step": 5}, is_main=True, keep=5)
    (ckpt / ".tmp-step_000006" / "step_000006").mkdir(parents=True)  # a crash mid-write
    assert _resume(engine, ckpt) == {"step": 5}
    checkpoint.save(engine, ckpt, 6, {"step": 6}, is_main=True, keep=5)
    assert not (ckpt / ".tmp-step_000006").exists()
    assert checkpoint.verify(ckpt / "step_000006") is None


def test_keep_prunes_old_checkpoints(engine, tmp_path):
    ckpt = tmp_path / "checkpoints"
    for step in range(1, 5):
        checkpoint.save(engine, ckpt, step, {"step": step}, is_main=True, keep=2)
    assert sorted(p.name for p in ckpt.iterdir() if p.is_dir()) == ["step_000003", "step_000004"]


def test_no_checkpoint_and_identity_check(engine, tmp_path):
    assert _resume(engine, tmp_path / "none") is None
    with pytest.raises(HarnessError, match="manifest_hash"):
        checkpoint.check_identity({"manifest_hash": "aaaa"}, {"manifest_hash": "bbbb"})


def test_when_every_checkpoint_is_corrupt_the_run_stops_instead_of_restarting(engine, tmp_path):
    ckpt = tmp_path / "checkpoints"
    checkpoint.save(engine, ckpt, 3, {"step": 3}, is_main=True, keep=5)
    states = next((ckpt / "step_000003").rglob("*model_states.pt"))
    states.write_bytes(states.read_bytes()[:50])
    for _ in range(2):  # and again on the next attempt, when only the *.corrupt copy is left
        with pytest.raises(HarnessError, match=r"no usable checkpoint.*--force train"):
            _resume(engine, ckpt, [])
    assert (ckpt / "step_000003.corrupt").is_dir()


def test_an_intact_checkpoint_that_cannot_be_loaded_is_incompatible_and_kept(tmp_path):
    ckpt = tmp_path / "checkpoints"
    checkpoint.save(_engine(2), ckpt, 4, {"step": 4}, is_main=True, keep=5)
    other = _engine(3)  # another shape: what a changed model or world size looks like to DeepSpeed
    with pytest.raises(HarnessError, match=r"intact .* cannot be loaded here"):
        _resume(other, ckpt, [])
    assert (ckpt / "step_000004").is_dir() and not (ckpt / "step_000004.corrupt").exists()


def test_trusted_by_size_and_mtime_unless_verify(engine, tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoints"
    checkpoint.save(engine, ckpt, 1, {"step": 1}, is_main=True, keep=5)
    hashed = []
    real = checkpoint.sha256_file
    monkeypatch.setattr(checkpoint, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert checkpoint.verify(ckpt / "step_000001") is None and hashed == []
    files = [p for p in (ckpt / "step_000001").rglob("*") if p.is_file() and p.name != "CHECKSUMS.json"]
    assert checkpoint.verify(ckpt / "step_000001", full=True) is None and len(hashed) == len(files)
    # A bit flip that keeps size and mtime is found only by re-hashing (`harness run --verify`).
    target = next((ckpt / "step_000001").rglob("*model_states.pt"))
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert checkpoint.verify(ckpt / "step_000001") is None
    assert "checksum" in checkpoint.verify(ckpt / "step_000001", full=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: room for two checkpoints of a 100k-parameter engine, then full."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(small_disk):
    big = _engine(20000)  # about 1.2 MB of weights and optimizer state per checkpoint
    ckpt = small_disk / "checkpoints"
    with pytest.raises(HarnessError, match=r"no space left on .*checkpoints") as failed:
        for step in range(1, 50):
            checkpoint.save(big, ckpt, step, {"step": step}, is_main=True, keep=50)
    assert "\n" not in str(failed.value)
    assert not [p for p in ckpt.iterdir() if p.name.startswith(".")]  # no staging, no temporary file
    newest = checkpoint._complete_tags(ckpt)
    assert newest and f"{newest[0][1]}, is kept" in str(failed.value)
    assert checkpoint.verify(ckpt / newest[0][1], full=True) is None


def test_bf16_at_zero_1_resumes_bit_exact(tmp_path, one_thread):
    """bf16 with fp32 gradient accumulation runs DeepSpeed's BF16_Optimizer at ZeRO-1, whose
    checkpoint layout differs from ZeRO-1's: it still resumes to the same losses."""
    init_distributed("bf16")
    cfg = TrainConfig(steps=8, global_batch_size=2, micro_batch_size=1, precision="bf16", zero_stage=1)

    def make():
        torch.manual_seed(0)
        return build_engine(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)), cfg, 8, 1)[0]

    def step(engine, i):
        loss = engine(torch.full((1, 8), 0.1 * (i + 1), dtype=torch.bfloat16)).float().pow(2).mean()
        engine.backward(loss)
        engine.step()
        return float(loss)

    first = make()
    for i in range(4):
        step(first, i)
    checkpoint.save(first, tmp_path, 2, {"step": 2, "world_size": 1, "zero_stage": 1}, is_main=True, keep=2)
    expected = [step(first, i) for i in range(4, 8)]
    resumed = make()
    resume = checkpoint.choose(tmp_path, 1, 1, is_main=True, full=False, log=print)
    checkpoint.load(resumed, tmp_path, tmp_path, resume, is_main=True, log=print)
    assert [step(resumed, i) for i in range(4, 8)] == expected
