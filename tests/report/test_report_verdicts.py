"""Verdicts: the per-position late-vs-early statistic and the Meta-vs-DeepSeek difference
give the right answer (and the honest 'not distinguishable') on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

from harness.report.collect import load_run
from harness.report.arm_rows import group_by_arm
from harness.report.stats import position_ratio
from harness.report.verdicts import CONTRADICTED, SUPPORTED, UNCLEAR, UNTESTABLE, long_sequence, meta_vs_deepseek
from tests.report.report_helpers import make_run, study_runs


def _groups(dirs):
    return group_by_arm([load_run(d) for d in dirs], "stp")


def test_position_ratio_known_values():
    rng = np.random.default_rng(0)
    base = 2.0 + rng.random((40, 16))
    # The arm is exactly 0.9x the baseline early and 0.8x late: the ratio is known everywhere.
    scale = np.where(np.arange(16) < 8, 0.9, 0.8)
    result = position_ratio(base, base * scale, n_resamples=500)
    assert result.ratio == pytest.approx(scale)
    assert result.late_minus_early.estimate == pytest.approx(-0.1)
    assert result.late_minus_early.low == pytest.approx(-0.1) and result.late_minus_early.high == pytest.approx(-0.1)
    assert result.low == pytest.approx(scale) and result.high == pytest.approx(scale)
    # OLS slope of a step from 0.9 to 0.8 at the middle, against p/(S-1).
    x = np.linspace(0, 1, 16)
    assert result.slope.estimate == pytest.approx(np.polyfit(x, scale, 1)[0])


def test_position_ratio_band_covers_the_truth_and_refuses_other_rows():
    rng = np.random.default_rng(1)
    base = 3.0 + rng.gamma(2.0, 0.5, size=(200, 32))
    arm = base * 0.95 + rng.normal(0, 0.2, size=base.shape)
    result = position_ratio(base, arm, n_resamples=1000)
    assert np.mean((result.low < 0.95) & (0.95 < result.high)) > 0.85
    assert result.late_minus_early.low < 0 < result.late_minus_early.high
    with pytest.raises(ValueError, match="different held-out rows"):
        position_ratio(base, arm[:100])


@pytest.mark.parametrize("late_gain,expected", [(0.05, SUPPORTED), (0.0, UNCLEAR), (-0.05, CONTRADICTED)])
def test_long_sequence_verdict(tmp_path, late_gain, expected):
    verdicts, curves = long_sequence(_groups(study_runs(tmp_path, late_gain=late_gain)), n_resamples=500)
    assert [v.arms for v in verdicts] == ["meta_n2 vs stp", "deepseek_n2 vs stp"]
    assert {v.verdict for v in verdicts} == {expected}
    assert set(curves) == {"meta_n2", "deepseek_n2"}
    for v in verdicts:
        assert v.low <= v.estimate <= v.high and "95% CI" in v.text


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
    assert verdicts["val_loss"].verdict == "DeepSeek lower loss at this scale"
    assert verdicts["val_loss"].estimate == pytest.approx(0.01 * 4.0, rel=0.2)


def test_equal_arms_are_not_distinguishable_and_unsolved_tasks_not_testable(tmp_path):
    rng = np.random.default_rng(3)
    solved = (rng.random(100) < 0.3).astype(int)
    rows = 3 + rng.random((30, 8))
    dirs = [make_run(tmp_path, "stp", "stp", outcomes={"humaneval": np.zeros(100), "mbpp": solved}, per_position=rows),
            make_run(tmp_path, "meta_n2", "meta", outcomes={"humaneval": np.zeros(100), "mbpp": solved},
                     per_position=rows),
            make_run(tmp_path, "deepseek_n2", "deepseek", outcomes={"humaneval": np.zeros(100), "mbpp": solved},
                     per_position=rows)]
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
