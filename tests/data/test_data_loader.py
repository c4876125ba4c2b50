"""The loader: batches are a pure function of (seed, step, global batch), independent of the
world size and of where a run resumed; every window once per epoch; arms share inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from harness.data.loader import TokenWindows, count_windows
from harness.errors import HarnessError
from tests.conftest import ROOT
from tests.data.data_helpers import prepare_small, shared_cache

S, RESERVE, GBS = 32, 8, 8


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepare_small(shared_cache(tmp_path_factory))


def windows(prepared, row_length=S + 1, split="train"):
    return TokenWindows(prepared, split, seq_len=S, row_length=row_length, lookahead_reserve=RESERVE)


def test_rows_are_windows_at_multiples_of_s(prepared):
    loader = windows(prepared, row_length=S + 3)
    (path, tokens), = prepared.shards("train")
    stream = np.fromfile(path, dtype=prepared.dtype)
    assert len(stream) == tokens and loader.n_windows == (tokens - RESERVE) // S
    picked = loader.windows_at(2, GBS, seed=7)
    batch = loader.batch(2, GBS, seed=7)
    assert batch.dtype == torch.int64 and batch.shape == (GBS, S + 3)
    for window, row in zip(picked.tolist(), batch.numpy()):
        np.testing.assert_array_equal(row, stream[window * S : window * S + S + 3])
    last = loader.rows(np.array([loader.n_windows - 1]))
    assert last.shape == (1, S + 3)  # the last window is full, never short


def test_world_size_does_not_change_the_global_batch(prepared):
    loader = windows(prepared)
    for step in (0, 3, 250):
        whole = loader.batch(step, GBS, seed=1)
        for world in (2, 4, 8):
            parts = [loader.batch(step, GBS, seed=1, rank=r, world_size=world) for r in range(world)]
            assert all(p.shape[0] == GBS // world for p in parts)
            assert torch.equal(torch.cat(parts), whole)


def test_resume_at_step_k_equals_uninterrupted(prepared):
    uninterrupted = windows(prepared)
    straight = [uninterrupted.batch(step, GBS, seed=3) for step in range(40)]
    resumed = windows(prepared)  # a fresh process-like state: no epoch cached
    for step in range(17, 40):
        assert torch.equal(resumed.batch(step, GBS, seed=3), straight[step])
    assert not torch.equal(windows(prepared).batch(5, GBS, seed=4), straight[5])  # the seed matters


def test_each_epoch_visits_every_window_once_and_reshuffles(prepared):
    loader = windows(prepared)
    n = loader.n_windows
    steps = 2 * n // GBS + 2
    seen = np.concatenate([loader.windows_at(step, GBS, seed=0) for step in range(steps)])
    first, second = seen[:n], seen[n : 2 * n]
    assert sorted(first.tolist()) == list(range(n)) and sorted(second.tolist()) == list(range(n))
    assert not np.array_equal(first, second)


def test_arms_with_different_n_see_identical_inputs(prepared):
    stp, meta4 = windows(prepared, S + 1), windows(prepared, S + 4)
    assert stp.n_windows == meta4.n_windows
    for step in (0, 9):
        a, b = stp.batch(step, GBS, seed=0), meta4.batch(step, GBS, seed=0)
        assert torch.equal(a, b[:, : S + 1])


def test_validation_batches_are_fixed_and_seed_free(prepared):
    val = windows(prepared, split="val")
    first, again = val.val_batches(3, 4), windows(prepared, split="val").val_batches(3, 4)
    assert len(first) == min(3, -(-val.n_windows // 4)) and all(torch.equal(a, b) for a, b in zip(first, again))
    rows = torch.cat(first)
    assert len({tuple(r.tolist()) for r in rows}) == len(rows)  # no window twice
    many = val.val_batches(10_000, 4)
    assert sum(len(b) for b in many) == val.n_windows


def test_batches_match_in_another_process(prepared, tmp_path_factory):
    script = f"""
import json, sys
from pathlib import Path
from harness.data.loader import TokenWindows
from tests.data.data_helpers import prepare_small
p = prepare_small(Path({str(shared_cache(tmp_path_factory))!r}))
w = TokenWindows(p, "train", seq_len={S}, row_length={S + 2}, lookahead_reserve={RESERVE})
print(json.dumps([p.manifest_hash] + [w.batch(s, {GBS}, seed=11).tolist() for s in (0, 1, 77)]))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    theirs = json.loads(out.stdout)
    loader = windows(prepared, S + 2)
    ours = [prepared.manifest_hash] + [loader.batch(s, GBS, seed=11).tolist() for s in (0, 1, 77)]
    assert theirs == ours


def test_count_windows_uses_the_reserve_not_the_row():
    assert count_windows([100], 32, 8) == 2  # windows at 0 and 32 (32+32+8 = 72 <= 100)
    assert count_windows([104], 32, 8) == 3
    assert count_windows([39, 200], 32, 8) == 0 + 6


def test_bad_shapes_are_refused(prepared):
    with pytest.raises(HarnessError, match="lookahead_reserve"):
        windows(prepared, row_length=S + RESERVE + 1)
    with pytest.raises(HarnessError, match="need S < row length"):
        windows(prepared, row_length=S)
    loader = windows(prepared)
    with pytest.raises(HarnessError, match="cannot be split over 3 ranks"):
        loader.batch(0, GBS, seed=0, rank=0, world_size=3)
    with pytest.raises(HarnessError, match="fewer than one global batch"):
        loader.batch(0, loader.n_windows + 1, seed=0)
    with pytest.raises(HarnessError, match="shorter than one window"):
        TokenWindows(prepared, "val", seq_len=100_000, row_length=100_001, lookahead_reserve=RESERVE)


def test_rank_out_of_range_and_early_batch_check(prepared):
    loader = windows(prepared)
    with pytest.raises(HarnessError, match="rank 2"):
        loader.batch(0, GBS, seed=0, rank=2, world_size=2)
    loader.check_global_batch(GBS, world_size=4)
    with pytest.raises(HarnessError, match="fewer than one global batch"):
        loader.check_global_batch(loader.n_windows + 4, world_size=4)
