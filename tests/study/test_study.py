"""Study files: arms resolve, budgets follow the matching rule, mismatches are refused."""

from __future__ import annotations

from harness.recipe import load_recipe
from harness.study.design import load_study
from tests.conftest import RECIPES, ROOT


def test_laptop_study_is_tokens_matched_with_a_sweep_views_and_a_control():
    study = load_study(RECIPES / "studies" / "laptop.yaml")
    assert study.match.matched and study.match.rule == "tokens"
    assert set(study.recipes) == {"stp", "meta_n2", "deepseek_n2", "stp_twin", "stp_short"}
    base = load_recipe(RECIPES / "laptop" / "stp.yaml").steps
    assert all(recipe.steps == study.match.arms[name].steps == base for name, recipe in study.recipes.items()
               if name != "stp_short")
    assert study.recipes["stp_short"].steps == base // 2 and study.seeds("stp_short") == list(range(5))
    assert study.is_control("stp_twin") and study.seeds("stp_twin") == [100, 101, 102, 103, 104]
    assert all(study.seeds(arm) == [0, 1, 2, 3, 4] for arm in ("stp", "meta_n2", "deepseek_n2"))
    assert study.config.lr_sweep.grid == [1e-3, 3e-3, 9e-3] and set(study.views) == {"params"}
    assert study.config.lr_sweep.seed not in {s for arm in study.recipes for s in study.seeds(arm)}
    assert not any(r.eval.enabled for r in study.recipes.values())  # pass@k generation skipped, NLL kept
    assert all(r.eval.canonical_nll and r.eval.trajectory for r in study.recipes.values())
    # the params view keeps the parameter-matched arms: DeepSeek's module adds parameters
    assert set(study.params_view_arms()) == {"stp", "meta_n2", "stp_twin"}


def test_runs_are_arm_times_seed_baseline_first_controls_last(write):
    study = load_study(RECIPES / "studies" / "laptop.yaml")
    lrs = {arm: 0.002 for arm in study.recipes}
    runs = list(study.runs(lrs))
    assert runs[0][0] == "stp" and runs[-1][0] == "stp_short"
    assert len(runs) == sum(len(study.seeds(arm)) for arm in study.recipes) == 5 * 5
    assert all(recipe.train.seed == seed for _, seed, recipe in runs)


def test_study_overrides_apply_per_arm_and_from_the_cli(write):
    path = write("s.yaml", f"""\
        study_version: 1
        name: s
        baseline: a
        matching: {{rule: flops, tolerance: 0.5}}
        arms:
          a: {{recipe: {RECIPES / 'stp.yaml'}}}
          b: {{recipe: {RECIPES / 'stp.yaml'}, overrides: {{train.optimizer.lr: 0.01}}}}
        """)
    study = load_study(path, ["train.seed=4"])
    assert study.recipes["b"].train.optimizer.lr == 0.01 and study.recipes["a"].train.optimizer.lr != 0.01
    assert study.recipes["a"].train.seed == 4 == study.recipes["b"].train.seed


def test_plan_refuses_a_mismatched_study(cli):
    result = cli("plan", ROOT / "tests" / "fixtures" / "mismatched_study.yaml")
    assert result.exit_code == 2
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1
    assert "not matched on params" in errors[0] and "deepseek_n2" in errors[0] and "fix:" in errors[0]
    assert "NOT matched" in result.output  # the table is still shown, with the verdict


def test_plan_prints_matched_tables(cli):
    for study in ("laptop.yaml", "cluster_7b.yaml"):
        result = cli("plan", RECIPES / "studies" / study)
        assert result.exit_code == 0, result.output + result.stderr
        assert "matched on" in result.output and "NOT" not in result.output


def test_bad_study_file_errors(write, cli):
    path = write("s.yaml", "study_version: 1\nname: s\nbaseline: z\nmatching: {rule: flops, tolerance: 0.1}\n"
                 f"arms: {{a: {{recipe: {RECIPES / 'stp.yaml'}}}, b: {{recipe: {RECIPES / 'stp.yaml'}}}}}\n")
    result = cli("plan", path)
    assert result.exit_code == 2 and "baseline 'z' is not one of the arms" in result.stderr
    path = write("t.yaml", "study_version: 1\nname: t\nbaseline: a\nmatching: {rule: flops, tolerance: 0.1}\n"
                 f"arms: {{a: {{recipe: {RECIPES / 'stp.yaml'}}}, b: {{recipe: {RECIPES / 'stp.yaml'}, overrides: {{train.sed: 1}}}}}}\n")
    result = cli("plan", path)
    assert result.exit_code == 2 and "arm b: overrides: unknown key 'sed'" in result.stderr


def test_induction_study_measures_each_size_against_its_own_stp_arm():
    study = load_study(RECIPES / "studies" / "induction.yaml")
    assert study.match.matched and study.match.rule == "tokens"
    assert len({recipe.steps for recipe in study.recipes.values()}) == 1  # every size on the same tokens
    assert study.baseline_of("small_meta_n2") == "small_stp" == study.baseline_of("small_stp")
    assert study.baseline_of("tiny_meta_n4") == "tiny_stp" == study.baseline_of("tiny_stp_twin")
    tags = {(arm, seed): recipe.track.tags for arm, seed, recipe in study.runs({a: 1e-3 for a in study.recipes})}
    assert tags[("small_deepseek_d1", 2)]["baseline"] == "small_stp" == tags[("small_stp", 0)]["baseline"]
    assert "baseline" not in tags[("tiny_meta_n2", 0)] and tags[("tiny_stp_twin", 100)]["control_of"] == "tiny_stp"
    assert all(len(study.seeds(arm)) >= 3 for arm in study.recipes)


def test_an_arm_baseline_must_be_a_plain_arm_of_the_study(write):
    import pytest

    from harness.errors import HarnessError

    body = """\
        study_version: 1
        name: s
        baseline: a
        matching: {{rule: tokens, tolerance: 0.01}}
        arms:
          a: {{recipe: {stp}}}
          b: {{recipe: {stp}}}
          c: {{recipe: {stp}, {extra}}}
          t: {{recipe: {stp}, control_of: a}}
        """
    for extra, message in (("baseline: nope", "baseline 'nope' must name an arm"),
                           ("baseline: t", "neither a control"),
                           ("control_of: b, baseline: b", "a control is measured against its arm's baseline")):
        path = write("s.yaml", body.format(stp=RECIPES / "stp.yaml", extra=extra))
        with pytest.raises(HarnessError, match=message):
            load_study(path)
