"""Every hint points the right way: each message a new user met (issue 25) names the right fix."""

from __future__ import annotations

from harness.recipe import load_recipe
from tests.conftest import RECIPES


def test_a_study_file_given_to_run_says_use_study(cli):
    result = cli("run", RECIPES / "studies" / "laptop.yaml")
    assert result.exit_code == 2
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert "is a study file" in line and "harness study" in line and "allowed here" not in result.stderr


def test_a_misplaced_key_suggests_where_it_lives(cli):
    result = cli("plan", RECIPES / "stp.yaml", "train.lr=1e-3")
    assert result.exit_code == 2 and "did you mean 'train.optimizer.lr'?" in result.stderr


def test_a_misspelt_key_is_named_first_with_its_spelling(cli, write):
    result = cli("plan", RECIPES / "deepseek_n2.yaml", "objective.depht=2")
    assert result.exit_code == 2 and "did you mean 'objective.depth'?" in result.stderr
    recipe = write("r.yaml", f"extends: {RECIPES / 'base.yaml'}\nname: r\nobjective: {{kind: deepseek, depht: 2}}\n")
    result = cli("plan", recipe)
    first = next(l for l in result.stderr.splitlines() if l.startswith("error:"))
    assert "objective.depht: unknown key; did you mean 'objective.depth'?" in first  # not "depth: required" first


def test_switching_the_objective_does_not_depend_on_argument_order_and_warns_about_the_name(cli):
    one = load_recipe(RECIPES / "stp.yaml", ["objective.kind=deepseek", "objective.depth=2"])
    two = load_recipe(RECIPES / "stp.yaml", ["objective.depth=2", "objective.kind=deepseek"])
    assert one == two and one.objective.kind == "deepseek" and one.objective.depth == 2
    meta = load_recipe(RECIPES / "meta_n2.yaml", ["objective.kind=deepseek", "objective.depth=1"])
    assert meta.objective.kind == "deepseek"  # Meta's `n` does not linger under DeepSeek
    result = cli("plan", RECIPES / "stp.yaml", "objective.kind=deepseek", "objective.depth=1")
    assert result.exit_code == 0 and "keeps the recipe's name 'stp'" in " ".join(result.output.split())
    named = cli("plan", RECIPES / "stp.yaml", "objective.kind=deepseek", "objective.depth=1", "name=ds")
    assert "keeps the recipe's name" not in " ".join(named.output.split())


def test_a_schedule_shorter_than_its_warmup_or_validation_interval_is_warned(cli):
    result = cli("plan", RECIPES / "stp.yaml", "train.steps=20", "train.schedule.warmup_steps=30")
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "warmup_steps 30 is not below the 20 training steps" in text
    assert "train.eval_every 50 is above the 20 training steps" in text
    quiet = " ".join(cli("plan", RECIPES / "stp.yaml").output.split())
    assert "warmup_steps" not in quiet and "eval_every" not in quiet


def test_the_context_hint_names_the_field_that_sets_it():
    from harness.eval.benchmarks.prompt_fit import _context_field

    assert _context_field(load_recipe(RECIPES / "stp.yaml", ["model.seq_len=256"])) == "model.seq_len"
    assert _context_field(load_recipe(RECIPES / "stp.yaml", ["data.seq_len=256"])) == "data.seq_len"


def test_no_code_tasks_means_no_sandbox_and_no_promised_nll(tmp_path):
    from harness.run.pipeline import Pipeline

    recipe = load_recipe(RECIPES / "deepseek_n2.yaml", ["eval.tasks=[]"])
    pipeline = Pipeline.from_recipe(recipe, RECIPES / "deepseek_n2.yaml", tmp_path)
    assert pipeline._scores(tmp_path, tmp_path) == {}  # returns before any sandbox opens
    assert "canonical-solution NLL" not in pipeline._analyses() and "acceptance" in pipeline._analyses()
    stp = Pipeline.from_recipe(load_recipe(RECIPES / "stp.yaml"), RECIPES / "stp.yaml", tmp_path)
    assert "acceptance" not in stp._analyses() and "canonical-solution NLL" in stp._analyses()


def test_command_descriptions_are_not_cut(cli):
    listing = cli("--help").output.split("Commands:", 1)[1]
    assert listing.strip() and "..." not in listing
