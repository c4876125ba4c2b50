"""The study protocol: equal tokens, secondary views, the learning-rate sweep, controls."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.run.pipeline import run_dir_for
from harness.study.design import check_matched, load_study
from harness.study.lr_sweep import choose
from tests.conftest import RECIPES


def study_file(write, **extra):
    body = f"""\
        study_version: 1
        name: proto
        baseline: stp
        matching: {{rule: tokens, tolerance: 0.01}}
        seeds: [0, 1]
        lr_sweep: {{grid: [0.001, 0.002, 0.004], seed: 1000, extend: 0}}
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
        assert recipe.train.seed == 1000 and recipe.train.optimizer.lr == lr
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
    # The run that won the choice is no reported run: the sweep seed is no arm's.
    sweep_dirs = {run_dir_for(r, tmp_path) for _, _, r in study.sweep_runs()}
    assert not sweep_dirs & {run_dir_for(r, tmp_path) for r in runs.values()}


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


def _sweep_losses(study, tmp_path, loss):
    """Finish every sweep point the sweep asks for, with loss(arm, lr), until it has chosen."""
    from harness.study.lr_sweep import runs_lookup, sweep_state

    for _ in range(20):
        state = sweep_state(study, runs_lookup(tmp_path))
        if not state.needed:
            return state.result
        for arm, lr, recipe in state.needed:
            val = {"val/depth_1": loss(arm, lr)}
            if arm != "stp":
                val["val/depth_2"] = val["val/depth_1"] + 1.0
            _finish(recipe, tmp_path, val)
    raise AssertionError("the sweep never finished")


def test_an_edge_choice_extends_the_grid_until_interior(write, tmp_path):
    """stp's best rate lies above the grid: two rates are added (x2 each, the grid's ratio) and
    the choice is interior; meta's lies far below the grid's bottom: three rates are added and
    the choice is still on the edge (capped); deepseek's is interior at once."""
    import math

    study = load_study(write("ext.yaml", study_file(write).read_text().replace("extend: 0", "extend: 3")))
    best = {"stp": 0.01, "meta": 0.0001, "deepseek": 0.002}
    result = _sweep_losses(study, tmp_path, lambda arm, lr: 5.0 + abs(math.log(lr / best[arm])))
    assert result.grids["stp"] == [0.001, 0.002, 0.004, 0.008, 0.016] and result.chosen["stp"] == 0.008
    assert result.grids["meta"] == [0.000125, 0.00025, 0.0005, 0.001, 0.002, 0.004]
    assert result.chosen["meta"] == 0.000125
    assert result.edge == {"stp": False, "meta": True, "deepseek": False}  # meta: capped after 3 added rates
    assert result.grids["deepseek"] == [0.001, 0.002, 0.004]
    assert sorted({p.lr for p in result.points if p.arm == "meta"}) == result.grids["meta"]


def test_a_capped_edge_choice_is_flagged_and_extend_zero_keeps_the_grid(write, tmp_path):
    study = load_study(study_file(write))
    result = _sweep_losses(study, tmp_path, lambda arm, lr: 5.0 - lr)  # always the largest rate
    assert result.chosen == {"stp": 0.004, "meta": 0.004, "deepseek": 0.004}
    assert all(result.edge.values()) and all(g == [0.001, 0.002, 0.004] for g in result.grids.values())


def test_the_sweep_seed_may_not_be_a_reported_seed(write):
    path = write("clash.yaml", study_file(write).read_text().replace("seed: 1000", "seed: 101"))
    with pytest.raises(HarnessError, match="lr_sweep.seed 101 is also run by twin"):
        load_study(path)


def test_next_rate_uses_the_grids_own_ratio_and_rounds():
    from harness.study.lr_sweep import next_rate

    assert next_rate([1e-3, 3e-3], upward=True) == 9e-3 and next_rate([1e-3, 3e-3], upward=False) == 0.0003333
    assert next_rate([1e-3, 2e-3, 4e-3], upward=True) == 8e-3


def test_study_overrides_reach_every_arm_before_its_own(write):
    path = write("o.yaml", study_file(write).read_text().replace(
        "seeds: [0, 1]", "seeds: [0, 1]\noverrides: {eval.enabled: false, train.optimizer.weight_decay: 0.0}").replace(
        "meta: {recipe:", "meta: {overrides: {train.optimizer.weight_decay: 0.2}, recipe:"))
    study = load_study(path)
    assert not any(r.eval.enabled for r in study.recipes.values())
    decay = {arm: r.train.optimizer.weight_decay for arm, r in study.recipes.items()}
    assert decay == {"stp": 0.0, "meta": 0.2, "deepseek": 0.0, "twin": 0.0}
    bad = write("bad_o.yaml", study_file(write).read_text().replace("seeds: [0, 1]", "seeds: [0, 1]\noverrides: {eval.nope: 1}"))
    with pytest.raises(HarnessError, match="the study's overrides"):
        load_study(bad)


def test_a_shorter_schedule_control_trains_a_fraction_of_its_arms_steps_on_the_same_seeds(write):
    path = write("short.yaml", study_file(write).read_text() +
                 f"  short: {{recipe: {RECIPES / 'stp.yaml'}, control_of: stp, schedule_fraction: 0.5}}\n")
    study = load_study(path)
    check_matched(study)  # a shorter control is no matching problem
    full, short = study.recipes["stp"], study.recipes["short"]
    assert short.train.steps == round(full.train.steps / 2) and short.train.schedule == full.train.schedule
    runs = {(arm, seed): r for arm, seed, r in study.runs({"stp": 0.002, "meta": 0.001, "deepseek": 0.004})}
    assert runs[("short", 0)].track.tags["schedule_fraction"] == "0.5" and ("short", 1) in runs
    assert runs[("short", 0)].train.optimizer.lr == 0.002
    lone = write("lone.yaml", study_file(write).read_text() +
                 f"  short: {{recipe: {RECIPES / 'stp.yaml'}, schedule_fraction: 0.5}}\n")
    with pytest.raises(HarnessError, match="needs control_of"):
        load_study(lone)
