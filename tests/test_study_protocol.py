"""The study protocol: equal tokens, secondary views, the learning-rate sweep, controls."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.lr_sweep import choose
from harness.pipeline import run_dir_for
from harness.study import load_study
from tests.conftest import RECIPES


def study_file(write, **extra):
    body = f"""\
        study_version: 1
        name: proto
        baseline: stp
        matching: {{rule: tokens, tolerance: 0.01}}
        seeds: [0, 1]
        lr_sweep: {{grid: [0.001, 0.002, 0.004], seed: 0}}
        views: {{params: {{}}, flops: {{seeds: [0]}}}}
        arms:
          stp: {{recipe: {RECIPES / 'stp.yaml'}}}
          meta: {{recipe: {RECIPES / 'meta_n2.yaml'}}}
          deepseek: {{recipe: {RECIPES / 'deepseek_n2.yaml'}}}
          twin: {{recipe: {RECIPES / 'stp.yaml'}, control_of: stp, seed_offset: 100}}
        """
    for key, value in extra.items():
        body += f"        {key}: {value}\n"
    return write("proto.yaml", body)


def test_tokens_rule_gives_every_arm_the_baselines_tokens(write):
    study = load_study(study_file(write))
    tokens = {arm: plan.tokens for arm, plan in study.match.arms.items()}
    assert study.match.matched and len(set(tokens.values())) == 1
    flops = study.match.arms
    assert flops["deepseek"].total_flops > flops["stp"].total_flops  # reported, not matched


def test_params_view_keeps_only_parameter_matched_arms(write):
    study = load_study(study_file(write))
    assert set(study.params_view_arms()) == {"stp", "meta", "twin"}  # DeepSeek adds a module


def test_flops_view_retrains_the_mtp_arms_on_fewer_steps(write):
    study = load_study(study_file(write))
    lrs = {"stp": 0.002, "meta": 0.001, "deepseek": 0.004}
    runs = list(study.view_runs("flops", lrs))
    assert sorted((arm, seed) for arm, seed, _ in runs) == [("deepseek", 0), ("meta", 0)]
    base = study.recipes["stp"].steps
    for arm, _, recipe in runs:
        assert recipe.steps < base and recipe.train.optimizer.lr == lrs[arm] and recipe.track.tags["view"] == "flops"


def test_sweep_trains_every_arm_but_the_control_at_every_rate_without_benchmarks(write):
    study = load_study(study_file(write))
    points = [(arm, lr) for arm, lr, _ in study.sweep_runs()]
    assert sorted(points) == sorted((a, lr) for a in ("stp", "meta", "deepseek") for lr in (0.001, 0.002, 0.004))
    for _, lr, recipe in study.sweep_runs():
        assert recipe.train.seed == 0 and recipe.train.optimizer.lr == lr
        assert not (recipe.eval.enabled or recipe.eval.per_position or recipe.eval.canonical_nll or recipe.eval.trajectory)


def _finish(recipe, runs_root, val):
    run_dir = run_dir_for(recipe, runs_root)
    run_dir.mkdir(parents=True)
    (run_dir / "stages.json").write_text(json.dumps({"train": {"inputs": "x", "outputs": {"val": val}}}))


def test_choice_is_the_lowest_healthy_validation_loss_and_runs_use_it(write, tmp_path):
    study = load_study(study_file(write))
    losses = {("stp", 0.001): 5.0, ("stp", 0.002): 4.8, ("stp", 0.004): 4.9,
              ("meta", 0.001): 5.3, ("meta", 0.002): 5.2, ("meta", 0.004): 4.0,  # 0.004 collapsed
              ("deepseek", 0.001): 5.1, ("deepseek", 0.002): 5.05, ("deepseek", 0.004): 5.0}
    with pytest.raises(HarnessError, match="sweep not finished"):
        choose(study, tmp_path)
    for arm, lr, recipe in study.sweep_runs():
        val = {"val/depth_1": losses[(arm, lr)]}
        if arm != "stp":
            val["val/depth_2"] = val["val/depth_1"] + (0.001 if (arm, lr) == ("meta", 0.004) else 1.0)
        if (arm, lr) == ("deepseek", 0.004):  # equal depths: healthy for chained modules, still chosen
            val["val/depth_2"] = val["val/depth_1"] - 0.005
        _finish(recipe, tmp_path, val)
    result = choose(study, tmp_path)
    assert result.chosen == {"stp": 0.002, "meta": 0.002, "deepseek": 0.004}
    assert result.edge == {"stp": False, "meta": False, "deepseek": True}
    runs = {(arm, seed): recipe for arm, seed, recipe in study.runs(result.chosen)}
    assert runs[("twin", 100)].train.optimizer.lr == 0.002 and ("twin", 0) not in runs
    assert [arm for arm, _ in runs][-1] == "twin"  # controls last
    # The sweep's chosen run is that seed's primary run: same training, same directory.
    sweep_dir = run_dir_for(next(r for a, lr, r in study.sweep_runs() if (a, lr) == ("stp", 0.002)), tmp_path)
    assert run_dir_for(runs[("stp", 0)], tmp_path) == sweep_dir


def test_a_study_with_a_sweep_has_no_runs_before_the_choice(write):
    with pytest.raises(HarnessError, match="need the chosen rates"):
        list(load_study(study_file(write)).runs())


@pytest.mark.parametrize("lines, message", [
    ("views: {tokens: {}}", "views.tokens.*should be 'params' or 'flops'"),
    ("arms: {a: {recipe: R}, b: {recipe: R, control_of: c}}", "control_of 'c' is not one of the arms"),
])
def test_inconsistent_protocols_are_refused(write, lines, message):
    arms = "arms: {a: {recipe: R}, b: {recipe: R}}"
    body = "\n".join(["study_version: 1", "name: bad", "baseline: a", "matching: {rule: tokens, tolerance: 0.01}",
                      lines if lines.startswith("arms") else f"{lines}\n{arms}"])
    path = write("bad.yaml", body.replace("R", str(RECIPES / "stp.yaml")))
    with pytest.raises(HarnessError, match=message):
        load_study(path)
