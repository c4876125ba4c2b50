"""Slurm jobs for a study with a learning-rate sweep: the sweep's points first, then the rest."""

from __future__ import annotations

from harness.launch.jobs import study_jobs
from harness.pipeline import run_dir_for
from harness.study import load_study
from tests.test_study_protocol import _finish, study_file


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
    chosen = next(r for a, lr, r in study.sweep_runs() if (a, lr) == ("meta", 0.004))
    assert run_dir_for(later["meta-s0"], runs) == run_dir_for(chosen, runs)  # the sweep's run, resumed by the job
