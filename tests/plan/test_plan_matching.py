"""Compute accounting against values computed by hand, and the matched-compute solver."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.plan.arms import plan_arm
from harness.plan.matching import match_arms, solve_steps
from harness.recipe import load_recipe
from tests.conftest import TINY

# TINY: L=2, d=16, 2 heads (head_dim 8), 1 kv head, ffn 32, V=64, S=8.
# block matrices = Wq 256 + Wo 256 + Wk 128 + Wv 128 + SwiGLU 3*16*32=1536 = 2304
# block params   = 2304 + 2 norms * 16 = 2336
# embeddings     = 2 * 64 * 16 = 2048 (untied)


@pytest.fixture
def tiny(write):
    path = write("tiny.yaml", TINY)
    return lambda *overrides: load_recipe(path, list(overrides))


def test_stp_by_hand(tiny):
    r = tiny()
    p = r.objective.params(r.model)
    assert (p.embedding, p.trunk, p.heads, p.total) == (2048, 2 * 2336 + 16, 0, 6736)
    f = r.objective.flops(r.model, 8)
    assert f.linear == 6 * 2304 * 2  # 27648
    assert f.attention == 12 * 8 * 16 * 2  # 3072
    assert f.unembedding == 6 * 64 * 16  # 6144
    assert f.total == 36864


def test_meta_matches_stp_params_and_adds_unembeddings(tiny):
    r = tiny("objective.kind=meta", "objective.n=2")
    p = r.objective.params(r.model)
    assert (p.embedding, p.trunk, p.heads, p.total) == (2048, 0, 2 * 2336 + 16, 6736)
    f = r.objective.flops(r.model, 8)
    assert (f.linear, f.attention, f.unembedding, f.total) == (27648, 3072, 12288, 43008)
    n1 = tiny("objective.kind=meta", "objective.n=1")
    assert n1.objective.params(n1.model).total == 6736
    assert n1.objective.flops(n1.model, 8).total == 36864


def test_deepseek_by_hand(tiny):
    r = tiny("objective.kind=deepseek", "objective.depth=1")
    p = r.objective.params(r.model)
    module = 16 + 16 + 2 * 16 * 16 + 2336 + 16  # enorm, hnorm, eh_proj, block, final norm = 2896
    assert (p.heads, p.total) == (module, 6736 + module)
    f = r.objective.flops(r.model, 8)
    assert f.linear == 6 * 2304 * 3 + 6 * 2 * 16 * 16  # 3 block passes + eh_proj = 44544
    assert f.attention == 12 * 8 * 16 * 3
    assert f.unembedding == 2 * 6 * 64 * 16
    assert f.total == 61440


def test_top_adds_one_unembedding_and_ranks_w_tokens_per_position(tiny):
    r = tiny("objective.kind=top", "objective.window=4")
    p = r.objective.params(r.model)
    assert (p.embedding, p.trunk, p.heads, p.total) == (2048, 2 * 2336 + 16, 64 * 16, 6736 + 1024)
    f = r.objective.flops(r.model, 8)
    assert (f.linear, f.attention, f.unembedding, f.total) == (27648, 3072, 2 * 6144, 43008)
    assert r.objective.row_length(8) == 12 and r.objective.targets_per_row(8) == 8 + 8 * 4
    trunc = tiny("objective.kind=top", "objective.window=4", "objective.target_window=truncate").objective
    assert trunc.row_length(8) == 9 and trunc.targets_per_row(8) == 8 + (4 * 5 + 3 + 2 + 1)


def test_tied_embeddings_and_attention_scale_with_seq_len(tiny):
    r = tiny("model.tie_embeddings=true")
    assert r.objective.params(r.model).embedding == 64 * 16
    assert r.objective.flops(r.model, 8).unembedding == 6 * 64 * 16  # still a matmul
    assert r.objective.flops(r.model, 16).attention == 2 * r.objective.flops(r.model, 8).attention


def test_targets_per_row(tiny):
    assert tiny().objective.targets_per_row(8) == 8
    meta = tiny("objective.kind=meta", "objective.n=2").objective
    assert meta.targets_per_row(8) == 16
    trunc = tiny("objective.kind=meta", "objective.n=3", "objective.target_window=truncate",
                 "model.stp_layers=3").objective
    assert trunc.targets_per_row(8) == 8 + 7 + 6


def test_plan_arm_totals(tiny):
    arm = plan_arm("tiny", tiny())
    assert arm.tokens == 3 * 2 * 8 and arm.total_flops == 36864 * 48 and arm.targets_per_step == 16


def test_flops_rule_solves_steps_within_tolerance(tiny):
    arms = {
        "stp": plan_arm("stp", tiny("train.steps=1000")),
        "meta": plan_arm("meta", tiny("objective.kind=meta", "objective.n=2")),
    }
    result = match_arms(arms, "stp", "flops", 0.01)
    assert result.matched
    assert result.arms["meta"].steps == round(1000 * 36864 / 43008)  # 857
    assert result.ratio("meta") == pytest.approx(1.0, abs=0.01)
    assert result.arms["stp"].steps == 1000


def test_flops_rule_refuses_when_rounding_breaks_tolerance(tiny):
    arms = {
        "stp": plan_arm("stp", tiny("train.steps=2")),
        "ds": plan_arm("ds", tiny("objective.kind=deepseek", "objective.depth=1")),
    }
    result = match_arms(arms, "stp", "flops", 0.01)
    assert not result.matched and "arm 'ds'" in result.problems[0]


def test_params_rule_same_tokens_and_refuses_extra_params(tiny):
    arms = {
        "stp": plan_arm("stp", tiny("train.steps=10")),
        "meta": plan_arm("meta", tiny("objective.kind=meta", "objective.n=2", "train.steps=99")),
        "ds": plan_arm("ds", tiny("objective.kind=deepseek", "objective.depth=1")),
    }
    result = match_arms(arms, "stp", "params", 0.05)
    assert result.arms["meta"].steps == 10 and result.arms["ds"].steps == 10
    assert [p.split()[1] for p in result.problems] == ["'ds'"]  # 9632 / 6736 = 1.43x


def test_unknown_rule_and_baseline(tiny):
    arms = {"stp": plan_arm("stp", tiny())}
    with pytest.raises(HarnessError, match="baseline 'x' is not an arm"):
        match_arms(arms, "x", "flops", 0.01)
    with pytest.raises(HarnessError, match="unknown matching rule"):
        solve_steps("bytes", arms["stp"], arms["stp"])
