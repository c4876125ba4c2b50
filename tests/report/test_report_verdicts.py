"""Verdicts: the per-position late-vs-early statistic and the Meta-vs-DeepSeek difference
give the right answer (and the honest 'not distinguishable') on constructed multi-seed data;
one seed, unmatched arms and stuck arms give no verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.report.arm_rows import build_rows, group_by_arm
from harness.report.claims import (
    CONTRADICTED,
    SUPPORTED,
    UNCLEAR,
    UNTESTABLE,
    control_checks,
    long_sequence,
    meta_vs_deepseek,
)
from harness.report.collect import load_run
from harness.report.stats import position_ratio
from tests.report.report_helpers import along_training, make_run, study_runs


def _groups(dirs):
    return group_by_arm([load_run(d) for d in dirs], "stp")


def test_position_ratio_known_values_and_band_across_seeds():
    rng = np.random.default_rng(0)
    base = [2.0 + rng.random(16) for _ in range(3)]
    # The arm is exactly 0.9x the baseline early and 0.8x late: the ratio is known everywhere.
    scale = np.where(np.arange(16) < 8, 0.9, 0.8)
    result = position_ratio(base, [b * scale for b in base])
    assert result.ratio == pytest.approx(scale) and result.late_minus_early == pytest.approx(-0.1)
    assert result.low == pytest.approx(scale) and result.high == pytest.approx(scale)  # every seed agrees
    noisy = position_ratio(base, [b * 0.95 * (1 + rng.normal(0, 0.01, 16)) for b in base])
    assert np.all(noisy.low < noisy.high) and np.mean((noisy.low < 0.95) & (0.95 < noisy.high)) > 0.8
    assert position_ratio(base[:1], base[:1]).low is None  # one seed: no band


@pytest.mark.parametrize("late_gain,expected", [(0.05, SUPPORTED), (0.0, UNCLEAR), (-0.05, CONTRADICTED)])
def test_long_sequence_verdict(tmp_path, late_gain, expected):
    verdicts, curves = long_sequence(_groups(study_runs(tmp_path, late_gain=late_gain)), n_resamples=500)
    assert [v.arms for v in verdicts] == ["meta_n2 vs stp", "deepseek_n2 vs stp"]
    assert {v.verdict for v in verdicts} == {expected}, [v.text for v in verdicts]
    assert set(curves) == {"meta_n2", "deepseek_n2"}
    for v in verdicts:
        assert v.low <= v.estimate <= v.high and "95% CI across seeds" in v.text and "t across 3 seeds" in v.method
        assert v.data_low <= v.data_high and v.p is not None


def test_one_seed_gives_no_late_vs_early_verdict(tmp_path):
    verdicts, _ = long_sequence(_groups(study_runs(tmp_path, late_gain=0.05, seeds=1)), n_resamples=300)
    assert {v.verdict for v in verdicts} == {UNTESTABLE} and all("one seed" in v.text for v in verdicts)


def test_long_sequence_without_per_position_losses_is_not_testable(tmp_path):
    dirs = [make_run(tmp_path, "stp", "stp"), make_run(tmp_path, "meta_n2", "meta")]
    verdicts, curves = long_sequence(_groups(dirs))
    assert [v.verdict for v in verdicts] == [UNTESTABLE] and curves == {}


def test_meta_vs_deepseek_difference_of_gains(tmp_path):
    verdicts = {v.statistic.split(" on ")[1]: v for v in meta_vs_deepseek(_groups(study_runs(tmp_path)), n_resamples=2000)}
    assert set(verdicts) == {"humaneval/pass_at_1", "mbpp/pass_at_1", "val_loss"}
    for v in verdicts.values():
        assert v.arms == "meta_n2 vs deepseek_n2" and v.low <= v.estimate <= v.high
    # The helper gives DeepSeek 0.97x and Meta 0.98x the baseline's loss: DeepSeek is lower.
    assert verdicts["val_loss"].verdict == "DeepSeek lower loss at this scale", verdicts["val_loss"].text
    assert verdicts["val_loss"].estimate == pytest.approx(0.01 * 4.0, abs=0.02)  # plus each seed's shift


def test_meta_vs_deepseek_needs_arms_matched_in_trunk_depth_and_flops(tmp_path):
    dirs = study_runs(tmp_path)
    records = [load_run(d) for d in dirs]
    for r in records:
        if r.arm == "meta_n2":
            r.recipe["model"]["stp_layers"] = 6  # a 4-layer trunk against DeepSeek's 6, as in the laptop study
    (verdict,) = meta_vs_deepseek(group_by_arm(records, "stp"), n_resamples=300)
    assert verdict.verdict == UNTESTABLE and "trunk depth (4 vs 6 layers)" in verdict.text
    assert "for reference only: " in verdict.text and "val_loss +0.0" in verdict.text


def test_equal_arms_are_not_distinguishable_and_unsolved_tasks_not_testable(tmp_path):
    rng = np.random.default_rng(3)
    solved = (rng.random(100) < 0.3).astype(int)
    dirs = []
    for seed in range(3):
        rows = 3 + rng.random((30, 8))
        for arm, kind in (("stp", "stp"), ("meta_n2", "meta"), ("deepseek_n2", "deepseek")):
            dirs.append(make_run(tmp_path, arm, kind, seed=seed, per_position=rows * (1 + rng.normal(0, 0.01)),
                                 outcomes={"humaneval": np.zeros(100), "mbpp": solved}))
    verdicts = {v.statistic.split(" on ")[1]: v for v in meta_vs_deepseek(_groups(dirs))}
    assert verdicts["humaneval/pass_at_1"].verdict == UNTESTABLE
    assert "neither arm solves" in verdicts["humaneval/pass_at_1"].text
    assert verdicts["mbpp/pass_at_1"].verdict == UNCLEAR
    assert (verdicts["mbpp/pass_at_1"].low, verdicts["mbpp/pass_at_1"].high) == (0.0, 0.0)
    assert verdicts["val_loss"].verdict == UNCLEAR


def test_meta_pairs_with_the_deepseek_arm_predicting_as_many_tokens(tmp_path):
    dirs = [make_run(tmp_path, "stp", "stp"), make_run(tmp_path, "meta_n2", "meta"),
            make_run(tmp_path, "meta_n4", "meta"), make_run(tmp_path, "deepseek_n2", "deepseek")]
    run = load_run(dirs[2])
    run.recipe["objective"]["n"] = 4
    groups = group_by_arm([load_run(dirs[0]), load_run(dirs[1]), run, load_run(dirs[3])], "stp")
    assert {v.arms for v in meta_vs_deepseek(groups)} == {"meta_n2 vs deepseek_n2"}


DOCUMENTS = np.random.default_rng(4).normal(0, 0.2, (60, 1))  # how hard each held-out document is, for every model


def _family_member(rng, quality: float, length: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Final per-position losses and a trajectory of a model whose context use grows with its
    quality (what a weaker run of the same objective looks like): loss(p) = 6 - 2q - 1.5 q log(1+p)/log(S)."""
    p = np.log1p(np.arange(length)) / np.log(length)
    noise = DOCUMENTS + rng.normal(0, 0.03, (len(DOCUMENTS), length))
    steps = [quality * f for f in (0.4, 0.6, 0.8, 1.0)]
    trajectory = np.stack([6 - 2 * q - 1.5 * q * p + noise for q in steps])
    return trajectory[-1], trajectory


def test_a_weaker_run_of_the_baseline_objective_is_not_distinguishable_late_vs_early(tmp_path):
    """The review's counterexample: a less-trained STP against STP. The unmatched ratio rises
    with position (D > 0, which used to read 'contradicted'); matched overall loss, it is null."""
    rng = np.random.default_rng(5)
    dirs = []
    for seed in range(3):
        base, base_traj = _family_member(rng, 1.0 + rng.normal(0, 0.01))
        weak, weak_traj = _family_member(rng, 0.7 + rng.normal(0, 0.01))
        dirs += [make_run(tmp_path, "stp", "stp", seed=seed, per_position=base, trajectory=base_traj),
                 make_run(tmp_path, "stp_short", "stp", seed=seed, per_position=weak, trajectory=weak_traj,
                          tags={"control_of": "stp", "schedule_fraction": "0.5"})]
    groups = _groups(dirs)
    position, curves = long_sequence(groups, n_resamples=500)
    (verdict,) = position
    assert curves["stp_short"].late_minus_early > 0.01  # the unmatched statistic is biased
    assert verdict.verdict == UNCLEAR and "negative control" in verdict.arms and "unmatched D = +" in verdict.text
    assert not verdict.family  # a control is a check, not a claim
    # As a shorter-schedule control only its matched D is judged, not its (weaker) gains.
    (check,) = control_checks(groups, build_rows(groups, n_resamples=200), position)
    assert check.claim.startswith("negative control: a shorter schedule") and check.verdict == "null, as it must be"


def test_without_trajectories_the_late_vs_early_claim_is_not_testable(tmp_path):
    rng = np.random.default_rng(6)
    rows = 3 + rng.random((30, 8))
    dirs = [make_run(tmp_path, "stp", "stp", per_position=rows), make_run(tmp_path, "meta_n2", "meta", per_position=rows)]
    (verdict,), _ = long_sequence(_groups(dirs), n_resamples=200)
    assert verdict.verdict == UNTESTABLE and "no checkpoint trajectories" in verdict.text


def test_a_collapsed_arm_joins_no_claim(tmp_path):
    dirs = study_runs(tmp_path, late_gain=0.05)
    collapsed = {"reference/unigram": 6.6, "position/loss_mean": 6.5}  # within 0.2 nats of the unigram
    meta = tmp_path / "meta_n2-s0"
    summary = json.loads((meta / "eval" / "summary.json").read_text())
    (meta / "eval" / "summary.json").write_text(json.dumps({**summary, **collapsed}))
    groups = _groups(dirs)
    verdicts, _ = long_sequence(groups, n_resamples=200)
    by_arm = {v.arms: v for v in verdicts}
    assert by_arm["meta_n2 vs stp"].verdict == UNTESTABLE and "collapsed" in by_arm["meta_n2 vs stp"].text
    assert by_arm["deepseek_n2 vs stp"].verdict == SUPPORTED
    assert [v.verdict for v in meta_vs_deepseek(groups)] == [UNTESTABLE]
    rows = build_rows(groups, n_resamples=200)
    assert rows[1].collapsed and "unigram" in rows[1].collapsed[0] and not rows[2].collapsed


def test_a_stuck_arm_joins_no_claim(tmp_path):
    groups = _groups(study_runs(tmp_path, late_gain=0.05))
    for record in groups["deepseek_n2"]:
        record.stuck = ["flat across the sweep's rates"]
    verdicts, _ = long_sequence(groups, n_resamples=200)
    by_arm = {v.arms: v for v in verdicts}
    assert by_arm["deepseek_n2 vs stp"].verdict == UNTESTABLE and "stuck (flat" in by_arm["deepseek_n2 vs stp"].text
    assert by_arm["meta_n2 vs stp"].verdict == SUPPORTED
    assert [v.verdict for v in meta_vs_deepseek(groups)] == [UNTESTABLE]
    assert build_rows(groups, n_resamples=100)[2].stuck


def _nll_rows(run_dir, values):
    (run_dir / "eval" / "nll_humaneval.jsonl").write_text("".join(
        json.dumps({"task_id": f"HumanEval/{i}", "bits_per_byte": float(v)}) + "\n" for i, v in enumerate(values)))


def _twins(tmp_path, dirs, factor: float = 1.0, seeds=(100, 101, 102)):
    """STP again on other seeds: the baseline's per-position losses with fresh noise."""
    rng = np.random.default_rng(11)
    out = []
    for seed, source in zip(seeds, dirs[:3]):
        pp = np.load(source / "eval" / "per_position.npy").astype(float) * factor * (1 + rng.normal(0, 0.002))
        pp = pp + rng.normal(0, 0.02, pp.shape)
        out.append(make_run(tmp_path, "stp_twin", "stp", seed=seed, per_position=pp, trajectory=along_training(pp),
                            tags={"control_of": "stp"}))
    return out


def test_canonical_nll_gains_are_paired_by_problem_and_a_control_must_be_null(tmp_path):
    rng = np.random.default_rng(7)
    base = 2.0 + rng.random(164)
    dirs = study_runs(tmp_path)
    twins = _twins(tmp_path, dirs)
    shifts = {"stp": 0.0, "meta_n2": -0.05, "deepseek_n2": -0.10, "stp_twin": 0.0}
    for run_dir in [*dirs, *twins]:
        arm = run_dir.name.rsplit("-s", 1)[0]
        _nll_rows(run_dir, base + shifts[arm] + rng.normal(0, 0.01) + rng.normal(0, 0.01, 164))
    groups = group_by_arm([load_run(d) for d in [*dirs, *twins]], "stp")
    rows = build_rows(groups, n_resamples=1000)
    gains = {row.arm: row.gains.get("nll/humaneval") for row in rows}
    assert gains["deepseek_n2"]["mean"] == pytest.approx(-0.10, abs=0.02) and gains["deepseek_n2"]["excludes_zero"]
    assert gains["deepseek_n2"]["method"] == "paired t across 3 seeds"
    assert gains["stp_twin"]["unit"].startswith("bits/byte") and gains["stp_twin"]["method"].startswith("Welch")
    position, _ = long_sequence(groups, n_resamples=300)
    checks = control_checks(groups, rows, position)
    assert checks and all(c.arms.startswith("stp_twin vs stp") for c in checks)
    assert {c.statistic for c in checks} >= {"gain on nll/humaneval", "gain on val_loss"}
    assert all(c.verdict == "null, as it must be" for c in checks), [c.text for c in checks]
    nll = {v.statistic.split(" on ")[1]: v for v in meta_vs_deepseek(groups, n_resamples=1000)}
    assert nll["nll/humaneval"].verdict == "DeepSeek lower loss at this scale"


def test_a_control_with_an_effect_is_reported_as_not_null(tmp_path):
    dirs = study_runs(tmp_path)
    groups = group_by_arm([load_run(d) for d in [*dirs, *_twins(tmp_path, dirs, factor=0.9)]], "stp")
    rows = build_rows(groups, n_resamples=500)
    checks = control_checks(groups, rows, long_sequence(groups, n_resamples=200)[0])
    val = next(c for c in checks if c.statistic == "gain on val_loss")
    assert val.verdict.startswith("NOT null")
