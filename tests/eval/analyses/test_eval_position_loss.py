"""Per-position loss: the numbers, the bins and the files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from harness.eval.analyses.position_loss import bin_edges, binned, position_losses, write_position_files
from tests.eval.mtp_models import ARMS, VOCAB, objective, random_model, training_path_position_losses

S = 12
OBJECTIVES = [objective("stp"), *ARMS.values(), objective("meta", n=2, target_window="truncate"),
              objective("top", window=3)]


@pytest.mark.parametrize("objective_cfg", OBJECTIVES, ids=lambda c: f"{c.kind}{c.n_predict}-{c.target_window}")
def test_equals_the_training_paths_loss_at_each_position(objective_cfg):
    """Rows of S+1 tokens score the same targets as the objective's own rows (S+n tokens,
    the same windows): the next-token cross-entropy at positions 0..S-1."""
    model = random_model(objective_cfg)
    long_rows = torch.randint(0, VOCAB, (5, objective_cfg.row_length(S)), generator=torch.Generator().manual_seed(3))
    ours = position_losses(model, [long_rows[:2, : S + 1], long_rows[2:, : S + 1]])
    theirs = training_path_position_losses(model, long_rows).numpy()
    assert ours.shape == (5, S) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.mean(axis=0), theirs.mean(axis=0), rtol=1e-5)


def test_bins_cover_every_position_once():
    assert bin_edges(256).tolist() == list(range(0, 257, 16))
    assert bin_edges(8).tolist() == list(range(9))  # fewer positions than bins: one each
    edges = bin_edges(100)
    assert edges[0] == 0 and edges[-1] == 100 and len(edges) == 17 and np.all(np.diff(edges) > 0)
    losses = np.arange(3 * 40, dtype=np.float32).reshape(3, 40)
    rows = binned(losses)
    assert sum(r["n"] for r in rows) == losses.size
    assert rows[0] == {"bin_start": 0, "bin_end": 2, "mean_loss": pytest.approx(losses[:, 0:2].mean()), "n": 6}
    assert [r["bin_start"] for r in rows] == bin_edges(40)[:-1].tolist()
    assert rows[-1]["bin_end"] == 40


def test_files_and_summary(tmp_path):
    losses = np.random.default_rng(0).random((6, 48)).astype(np.float32)
    losses[:, :3] += 5  # early positions are harder
    summary = write_position_files(losses, tmp_path, title="test")
    assert np.array_equal(np.load(tmp_path / "per_position.npy"), losses)
    with open(tmp_path / "per_position.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["bin_start", "bin_end", "mean_loss", "n"] and len(table) == 16
    assert [int(r["bin_start"]) for r in table] == list(range(0, 48, 3))
    assert float(table[0]["mean_loss"]) == pytest.approx(losses[:, :3].mean(), abs=1e-6)
    assert summary["position/loss_first_bin"] == pytest.approx(float(table[0]["mean_loss"]), abs=1e-6)
    assert summary["position/loss_last_bin"] == pytest.approx(losses[:, 45:].mean(), abs=1e-6)
    assert summary["position/rows"] == 6 and summary["position/seq_len"] == 48
    assert (tmp_path / "per_position.png").stat().st_size > 1000
    assert (tmp_path / "per_position.svg").read_text().lstrip().startswith("<?xml")


class _ModelOnAnAccelerator(torch.nn.Module):
    """Weights on `meta` (standing in for a GPU); like a real GPU model, it refuses inputs
    left on the CPU (meta itself would quietly accept them)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.empty(1, device="meta"))
        self.seen = []

    def next_token_logits(self, tokens):
        assert tokens.device == self.w.device, f"rows on {tokens.device}, weights on {self.w.device}"
        self.seen.append(tokens.device)
        return torch.zeros(*tokens.shape, VOCAB, device=tokens.device)  # (B, S, V)


def test_held_out_rows_are_scored_on_the_models_device():
    model = _ModelOnAnAccelerator()
    rows = torch.randint(0, VOCAB, (2, S + 1))  # held-out rows come from numpy: CPU
    with pytest.raises(NotImplementedError, match="meta"):  # a meta result has no values to read back
        position_losses(model, [rows])
    assert model.seen == [torch.device("meta")]
