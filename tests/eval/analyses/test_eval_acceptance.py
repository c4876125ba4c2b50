"""Teacher-forced acceptance per depth on models whose every guess is known in advance."""

from __future__ import annotations

import pytest
import torch

from harness.eval.analyses.acceptance import depth_agreement
from tests.eval.mtp_models import copy_model, objective, phrase_corpus, trained_model

S = 12


def rows_of(n_rows: int, row_length: int, vocab: int = 3, seed: int = 0) -> torch.Tensor:
    """Tokens from {0, 1, 2}: repeats are common, so the rates are far from 0 and 1."""
    return torch.randint(0, vocab, (n_rows, row_length), generator=torch.Generator().manual_seed(seed))


def rate(rows: torch.Tensor, same) -> float:
    """Mean over rows and positions i < S of same(row, i), by plain loops."""
    hits = [same(row.tolist(), i) for row in rows for i in range(S)]
    return sum(hits) / len(hits)


def test_meta_copy_heads():
    """Every head guesses t_i, and the next-token path guesses t_j for t_{j+1}: depth k
    agrees with greedy when t_i == t_{i+k-1} and is right when t_i == t_{i+k}."""
    model = copy_model(objective("meta", n=4))
    rows = rows_of(5, S + 4)
    found = depth_agreement(model, [rows[:3], rows[3:]], S)
    assert set(found) == {"2", "3", "4"}
    for k in (2, 3, 4):
        assert found[str(k)]["n"] == 5 * S
        assert found[str(k)]["agree_greedy"] == pytest.approx(rate(rows, lambda t, i: t[i] == t[i + k - 1]))
        assert found[str(k)]["correct"] == pytest.approx(rate(rows, lambda t, i: t[i] == t[i + k]))
        per_row = found[str(k)]["rows"]  # the units a comparison resamples: one count per row, both batches
        assert per_row["positions"] == S and len(per_row["agree_greedy"]) == len(per_row["correct"]) == 5
        assert [c / S for c in per_row["agree_greedy"]] == pytest.approx(
            [rate([row], lambda t, i: t[i] == t[i + k - 1]) for row in rows])
        assert sum(per_row["correct"]) / (5 * S) == pytest.approx(found[str(k)]["correct"])
    assert 0 < found["2"]["agree_greedy"] < 1 and found["2"]["agree_greedy"] != found["2"]["correct"]


def test_deepseek_copy_module():
    """Module 1 reads t_{i+1} and guesses it again for t_{i+2}; greedy guesses t_{i+1} for
    t_{i+2} too, so agreement is total, and correctness is the rate of t_{i+1} == t_{i+2}."""
    model = copy_model(objective("deepseek", depth=2))
    rows = rows_of(4, S + 3, seed=1)
    found = depth_agreement(model, [rows], S)
    assert set(found) == {"2", "3"}
    for k in (2, 3):
        assert found[str(k)]["agree_greedy"] == 1.0
        assert found[str(k)]["correct"] == pytest.approx(rate(rows, lambda t, i: t[i + k - 1] == t[i + k]))


def test_rows_must_hold_every_target():
    with pytest.raises(ValueError, match="rows of S \\+ n = 16"):
        depth_agreement(copy_model(objective("meta", n=4)), [rows_of(2, S + 1)], S)


def test_a_trained_model_beats_chance_and_agrees_more_than_it_is_right():
    """On held-out text from its corpus, depth 2 of a trained Meta n=2 model matches greedy
    decoding at least as often as the truth (the truth has unpredictable phrase starts)."""
    model = trained_model("meta2")
    rows = phrase_corpus(5 * (S + 2), 99).view(5, S + 2)
    found = depth_agreement(model, [rows], S)["2"]
    assert found["correct"] > 0.4 and found["agree_greedy"] > found["correct"]
