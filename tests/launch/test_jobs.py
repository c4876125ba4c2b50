"""Slurm jobs for a study with a learning-rate sweep: the sweep's points first, then the rest."""

from __future__ import annotations

from harness.launch.jobs import study_jobs
from harness.run.pipeline import run_dir_for
from harness.study.design import load_study
from tests.study.test_study_protocol import _finish, study_file


def test_sweep_points_first_then_every_arm_at_its_chosen_rate(write, tmp_path):
    study = load_study(study_file(write))
    runs = tmp_path / "runs"
    first = study_jobs(study, runs)
    assert sorted(name for name, _, _ in first) == sorted(
        f"{arm}-lr{lr:g}" for arm in ("stp", "meta", "deepseek") for lr in (0.001, 0.002, 0.004))
    for arm, lr, recipe in study.sweep_runs():
        _finish(recipe, runs, {"val/depth_1": 5.0 - lr, "val/depth_2": 6.0} if arm != "stp" else {"val/depth_1": 5.0})
    later = {name: recipe for name, _, recipe in study_jobs(study, runs)}
    assert set(later) == {"stp-s0", "stp-s1", "meta-s0", "meta-s1", "deepseek-s0", "deepseek-s1", "twin-s100",
                          "twin-s101", "meta-flops-s0", "deepseek-flops-s0"}
    assert later["meta-s0"].train.optimizer.lr == 0.004 and later["twin-s100"].train.optimizer.lr == 0.001
    # The sweep's seed is no arm's: every primary job trains a run of its own.
    swept = {run_dir_for(r, runs) for _, _, r in study.sweep_runs()}
    assert not swept & {run_dir_for(r, runs) for r in later.values()}


def test_an_edge_choice_emits_the_next_rate_before_any_arm_runs(write, tmp_path):
    study = load_study(write("e.yaml", study_file(write).read_text().replace("extend: 0", "extend: 1")))
    runs = tmp_path / "runs"
    for arm, lr, recipe in study.sweep_runs():  # every arm best at the largest rate
        _finish(recipe, runs, {"val/depth_1": 5.0 - lr, "val/depth_2": 6.0} if arm != "stp" else {"val/depth_1": 5.0 - lr})
    assert sorted(name for name, _, _ in study_jobs(study, runs)) == ["deepseek-lr0.008", "meta-lr0.008", "stp-lr0.008"]
