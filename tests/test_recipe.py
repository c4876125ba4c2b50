"""Recipes: schema errors are one clear line, extends merges deeply, overrides are typed,
and the hash ignores key order, comments and formatting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.recipe import load_recipe, recipe_hash, resolved_yaml
from tests.conftest import ROOT, TINY


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_key_names_file_path_and_allowed_keys(write, cli):
    base = write("base.yaml", TINY)
    child = write("child.yaml", "extends: base.yaml\nmodel:\n  n_layer: 3\n")
    line = _one_error_line(cli("plan", child))
    assert str(child) in line and "model.n_layer" in line
    assert "unknown key" in line and "stp_layers" in line  # what is allowed
    assert base.exists()


def test_wrong_type_names_field_and_value(write, cli):
    path = write("r.yaml", TINY.replace("stp_layers: 2", "stp_layers: two"))
    line = _one_error_line(cli("plan", path))
    assert "model.stp_layers" in line and "'two'" in line and "integer" in line


def test_error_points_at_the_file_that_set_the_value(write, cli):
    write("base.yaml", TINY.replace("d_model: 16", "d_model: sixteen"))
    child = write("child.yaml", "extends: base.yaml\nname: child\n")
    line = _one_error_line(cli("plan", child))
    assert "base.yaml: model.d_model" in line


def test_missing_extends_target(write, cli):
    path = write("r.yaml", "extends: nowhere.yaml\n" + TINY)
    line = _one_error_line(cli("plan", path))
    assert "nowhere.yaml" in line and "no such file" in line and str(path) in line


def test_extends_cycle(write, cli):
    write("a.yaml", "extends: b.yaml\n" + TINY)
    write("b.yaml", "extends: c.yaml\n")
    c = write("c.yaml", "extends: a.yaml\n")
    line = _one_error_line(cli("plan", c))
    assert "extends cycle" in line and "a.yaml -> " in line


def test_bad_override_path(write, cli):
    path = write("r.yaml", TINY)
    line = _one_error_line(cli("plan", path, "train.optimiser.lr=1"))
    assert "'optimiser'" in line and "optimizer" in line and "train.optimiser.lr=1" in line


def test_override_of_a_value_as_a_section(write, cli):
    path = write("r.yaml", TINY)
    line = _one_error_line(cli("plan", path, "train.seed.x=1"))
    assert "train.seed is a value" in line


def test_missing_required_and_version(write, cli):
    path = write("r.yaml", TINY.replace("name: tiny\n", ""))
    assert "name: required" in _one_error_line(cli("plan", path))
    path = write("v.yaml", TINY.replace("recipe_version: 1", "recipe_version: 7"))
    assert "recipe_version 7 is not supported" in _one_error_line(cli("plan", path))


def test_invalid_yaml_and_missing_file(write, cli):
    path = write("r.yaml", TINY + "train: [unclosed\n")
    line = _one_error_line(cli("plan", path))
    assert "not valid YAML" in line and "line" in line
    assert "no such file" in _one_error_line(cli("plan", write("x.yaml", TINY).parent / "absent.yaml"))


def test_cross_section_checks(write, cli):
    path = write("r.yaml", TINY + "objective: {kind: meta, n: 3}\n")
    assert "objective.n 3" in _one_error_line(cli("plan", path))
    path = write("s.yaml", TINY + "data: {seq_len: 16}\n")
    assert "data.seq_len 16 is above model.seq_len 8" in _one_error_line(cli("plan", path))


def test_unknown_objective_kind_lists_allowed(write, cli):
    path = write("r.yaml", TINY + "objective: {kind: medusa}\n")
    line = _one_error_line(cli("plan", path))
    assert "'medusa'" in line and "'stp'" in line and "'deepseek'" in line


def test_no_traceback_from_the_real_console_script(write):
    path = write("r.yaml", TINY.replace("vocab_size: 64", "vocab_size: [1]"))
    proc = subprocess.run([sys.executable, "-m", "harness", "plan", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


RECIPE_LAYER = """\
import sys
from harness.cli import main
for args in (["resolve", "recipes/deepseek_n2.yaml"], ["plan", "recipes/studies/laptop.yaml"],
             ["launch", "slurm", "recipes/studies/cluster_7b.yaml", "--nodes", "2", "--gpus-per-node", "8",
              "--dry-run", "--out", sys.argv[1]], ["--help"]):
    try:
        main(args, standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "deepspeed", "transformers", "mlflow", "lm_eval"})
assert not heavy, heavy
"""


def test_the_recipe_layer_does_not_import_torch(tmp_path):
    """`harness resolve`, `plan`, `launch --dry-run` and `--help` read recipes, objectives'
    configs and FLOPs without torch (or any other heavy library): that is what keeps them
    well under a second (harness/model/objectives/__init__.py says how)."""
    proc = subprocess.run([sys.executable, "-c", RECIPE_LAYER, str(tmp_path / "jobs")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "matched on tokens" in proc.stdout and "resolved recipe, sha256" in proc.stdout


def test_an_unknown_objective_kind_names_the_registered_ones(write):
    path = write("r.yaml", TINY + "objective: {kind: mta, n: 2}\n")
    with pytest.raises(HarnessError, match="kind must be one of 'stp', 'deepseek', 'meta', 'top'.*did you mean 'meta'"):
        load_recipe(path)


def test_extends_merges_mappings_deeply_and_replaces_lists(write):
    write("base.yaml", TINY + "data: {tokenizer: {kind: bpe, special_tokens: [a, b], min_frequency: 3}}\n")
    child = write("child.yaml", """\
        extends: base.yaml
        name: child
        model: {d_model: 32}
        data: {tokenizer: {special_tokens: [c]}}
        """)
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.model.d_model == 32 and recipe.model.stp_layers == 2  # merged, not replaced
    assert recipe.data.tokenizer.special_tokens == ["c"]  # lists are replaced whole
    assert recipe.data.tokenizer.min_frequency == 3


def test_extends_replaces_a_mapping_whose_kind_changes(write):
    """The parent's stdlib-only keys must not leak into a child's local source (and an error
    about one would name a key the child never wrote)."""
    write("base.yaml", TINY + "data: {source: {kind: stdlib, include_tests: true, max_files: 3}, val_fraction: 0.3}\n")
    child = write("child.yaml", """\
        extends: base.yaml
        name: child
        data: {source: {kind: local, path: corpus}}
        """)
    recipe = load_recipe(child)
    assert recipe.data.source.kind == "local" and recipe.data.source.path == "corpus"
    assert recipe.data.val_fraction == 0.3  # the rest of `data` still merges
    same_kind = write("same.yaml", "extends: base.yaml\nname: same\ndata: {source: {kind: stdlib, max_files: 5}}\n")
    assert load_recipe(same_kind).data.source.include_tests is True  # same kind: merged as before


def test_extends_chain_of_three(write):
    write("a.yaml", TINY)
    write("sub/b.yaml", "extends: ../a.yaml\ntrain: {seed: 5}\n")
    c = write("sub/c.yaml", "extends: b.yaml\nname: c\n")
    recipe = load_recipe(c)
    assert (recipe.name, recipe.train.seed, recipe.train.steps) == ("c", 5, 3)


def test_overrides_are_typed_by_the_schema(write):
    path = write("r.yaml", TINY)
    recipe = load_recipe(path, [
        "name=123",  # a str field keeps the text, it does not become an int
        "train.optimizer.lr=1e-3",  # PyYAML alone would read this as a string
        "train.seed=7",
        "objective.kind=deepseek",
        "objective.depth=2",
        "objective.mtp_lambda=0.1",
        "data.tokenizer.special_tokens=[x, y]",
        "track.tags.owner=me",
    ])
    assert recipe.name == "123"
    assert recipe.train.optimizer.lr == pytest.approx(1e-3) and isinstance(recipe.train.optimizer.lr, float)
    assert recipe.train.seed == 7
    assert recipe.objective.depth == 2 and recipe.objective.lambda_at(0) == 0.1
    assert recipe.data.tokenizer.special_tokens == ["x", "y"]
    assert recipe.track.tags == {"owner": "me"}


def test_override_type_mismatch_and_deletion(write):
    path = write("r.yaml", TINY + "train: {steps: 3, global_batch_size: 2, micro_batch_size: 1, num_threads: 2}\n")
    with pytest.raises(HarnessError, match=r"train.seed: Input should be a valid integer"):
        load_recipe(path, ["train.seed=abc"])
    assert load_recipe(path).train.num_threads == 2
    assert load_recipe(path, ["~train.num_threads"]).train.num_threads is None


def test_steps_or_tokens(write):
    path = write("r.yaml", TINY)
    recipe = load_recipe(path, ["~train.steps", "train.tokens=100"])
    assert recipe.steps == 7  # ceil(100 / (2 sequences x 8 tokens))
    with pytest.raises(HarnessError, match="exactly one of train.steps and train.tokens"):
        load_recipe(path, ["train.tokens=100"])


def test_hash_ignores_key_order_comments_and_formatting(write):
    a = write("a.yaml", TINY)
    b = write("b.yaml", """\
        # the same recipe, written differently
        train:
          micro_batch_size: 1
          global_batch_size: 2
          steps: 3     # three steps
        model:
          seq_len: 8
          vocab_size: 64
          ffn_hidden: 32
          n_kv_heads: 1
          n_heads: 2
          d_model: 16
          stp_layers: 2
        name: "tiny"
        recipe_version: 1
        objective: {kind: stp}
        """)
    assert recipe_hash(load_recipe(a)) == recipe_hash(load_recipe(b))
    assert recipe_hash(load_recipe(a)) != recipe_hash(load_recipe(a, ["train.seed=1"]))
    assert len(recipe_hash(load_recipe(a))) == 64


def test_resolved_yaml_round_trips_to_the_same_hash(write):
    recipe = load_recipe(write("r.yaml", TINY), ["objective.kind=meta", "objective.n=2"])
    again = load_recipe(write("resolved.yaml", resolved_yaml(recipe)))
    assert again == recipe and recipe_hash(again) == recipe_hash(recipe)


def test_training_hash_ignores_eval_and_tracking(write):
    from harness.recipe import TRAINING_SECTIONS

    path = write("r.yaml", TINY)
    a, b = load_recipe(path), load_recipe(path, ["eval.limit=3", "track.experiment=x"])
    assert recipe_hash(a) != recipe_hash(b)
    assert recipe_hash(a, TRAINING_SECTIONS) == recipe_hash(b, TRAINING_SECTIONS)


def test_resolve_command_prints_hash(write, cli):
    path = write("r.yaml", TINY)
    result = cli("resolve", path)
    assert result.exit_code == 0
    assert f"sha256 {recipe_hash(load_recipe(path))}" in result.output
