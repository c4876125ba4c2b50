"""`model.init_from` in the recipe (`model/pretrained_config.py`): the checkpoint's config.json
fills the shape, its tokenizer becomes the data's, and every bad input is one line with the
fix, from `harness plan` before anything runs. Also `train.freeze` in the plan, and the hash
of recipes that set neither field."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.errors import HarnessError
from harness.model.export import export_hf
from harness.plan.arms import plan_arm
from harness.recipe import load_recipe, recipe_hash, resolved_yaml
from tests.conftest import TINY
from tests.model.conftest import make, objective, tiny_trunk

FINETUNE = """\
recipe_version: 1
name: ft
model: {init_from: ckpt}
objective: {kind: deepseek, depth: 1}
train: {steps: 3, global_batch_size: 2, micro_batch_size: 1, freeze: trunk_and_unembedding}
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer_dir):
    model = make(tiny_trunk(stp_layers=3), objective("stp"))
    return export_hf(model, tmp_path_factory.mktemp("ckpt") / "export", tokenizer_dir)


@pytest.fixture
def ckpt(exported, tmp_path):
    """A copy of the export at tmp_path/ckpt, beside the recipes a test writes (and may damage)."""
    return shutil.copytree(exported, tmp_path / "ckpt")


def one_line(cli, *args, fix: str = "fix: ") -> str:
    result = cli(*args)
    assert result.exit_code == 2, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fix in lines[0], lines[0]
    return lines[0]


def test_the_shape_and_the_tokenizer_come_from_the_checkpoint(ckpt, write):
    recipe = load_recipe(write("ft.yaml", FINETUNE))
    m = recipe.model
    assert (m.stp_layers, m.d_model, m.n_heads, m.n_kv_heads, m.ffn_hidden, m.vocab_size, m.seq_len) == (3, 32, 4, 2, 64, 300, 16)
    assert (m.init_from, recipe.data.tokenizer.kind, recipe.data.tokenizer.path) == ("ckpt", "pretrained", "ckpt")
    again = write("resolved.yaml", resolved_yaml(recipe))  # a run directory's copy, elsewhere
    assert recipe_hash(load_recipe(again, base_dir=ckpt.parent)) == recipe_hash(recipe)


def test_meta_keeps_the_checkpoints_layers_as_its_trunk_and_head_1(ckpt, write):
    recipe = load_recipe(write("ft.yaml", FINETUNE.replace("{kind: deepseek, depth: 1}", "{kind: meta, n: 2}")))
    assert recipe.model.stp_layers == 4  # L-n trunk layers + head 1 = the checkpoint's 3


def test_a_conflicting_shape_is_refused_naming_both_values(ckpt, write, cli):
    path = write("ft.yaml", FINETUNE.replace("{init_from: ckpt}", "{init_from: ckpt, d_model: 64}"))
    line = one_line(cli, "plan", path)
    assert "model.d_model 64" in line and "hidden_size 32" in line and "remove model.d_model" in line
    meta = write("meta.yaml", FINETUNE.replace("{init_from: ckpt}", "{init_from: ckpt, stp_layers: 3}")
                 .replace("{kind: deepseek, depth: 1}", "{kind: meta, n: 2}"))
    line = one_line(cli, "plan", meta)
    assert "model.stp_layers 3" in line and "num_hidden_layers 3 means 4 for meta n=2" in line


def test_a_hub_name_is_refused_with_the_offline_fix(write, cli):
    path = write("ft.yaml", FINETUNE.replace("ckpt", "meta-llama/Llama-3.2-1B"))
    line = one_line(cli, "plan", path)
    assert "downloads nothing" in line and "hf download meta-llama/Llama-3.2-1B --local-dir DIR" in line


def test_a_missing_directory_is_refused_unless_the_recipe_states_the_whole_shape(write, cli, tmp_path):
    line = one_line(cli, "plan", write("ft.yaml", FINETUNE.replace("ckpt", "../nowhere")))
    assert "no such directory" in line
    shape = "{init_from: ../nowhere, stp_layers: 3, d_model: 32, n_heads: 4, n_kv_heads: 2, ffn_hidden: 64, " \
            "vocab_size: 300, seq_len: 16, norm_eps: 1.0e-5, rope_theta: 10000.0, tie_embeddings: false}"
    stated = write("stated.yaml", FINETUNE.replace("{init_from: ckpt}", shape))
    result = cli("plan", stated)  # a recipe written before its checkpoint (recipes/finetune/)
    assert result.exit_code == 0, result.stderr
    assert "model.init_from '../nowhere' is not there yet" in result.output


def test_broken_safetensors_are_refused_before_training(ckpt, write, cli):
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[:100])
    assert "not a readable safetensors file" in one_line(cli, "plan", write("ft.yaml", FINETUNE))
    (ckpt / "model.safetensors").unlink()
    assert "no model.safetensors" in one_line(cli, "plan", write("ft.yaml", FINETUNE))


def test_a_tokenizer_that_does_not_fit_the_embedding_is_refused(ckpt, write, cli):
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "vocab_size": 100}))
    line = one_line(cli, "plan", write("ft.yaml", FINETUNE))
    assert "has 280 tokens but" in line and "100 embedding rows" in line
    (ckpt / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (ckpt / name).unlink()
    assert "no tokenizer.json" in one_line(cli, "plan", write("ft.yaml", FINETUNE))


def test_a_new_tokenizer_for_a_pretrained_embedding_is_refused(ckpt, write, cli):
    path = write("ft.yaml", FINETUNE + "data: {tokenizer: {kind: bpe}}\n")
    line = one_line(cli, "plan", path)
    assert "data.tokenizer.kind 'bpe'" in line and "kind: pretrained, path: ckpt" in line


def test_a_config_that_is_not_llama_is_refused(ckpt, write, cli):
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "rope_parameters": {"rope_type": "llama3", "factor": 8.0}}))
    assert "RoPE scaling 'llama3'" in one_line(cli, "plan", write("ft.yaml", FINETUNE))


def test_freezing_the_trunk_under_a_tied_unembedding_is_refused(write, cli):
    tied = TINY.replace("seq_len: 8}", "seq_len: 8, tie_embeddings: true}").replace(
        "micro_batch_size: 1}", "micro_batch_size: 1, freeze: trunk}")
    line = one_line(cli, "plan", write("tied.yaml", tied), fix="set train.freeze to trunk_and_unembedding")
    assert "model.tie_embeddings shares it" in line


def test_plan_counts_what_learns_and_what_a_frozen_step_costs(ckpt, write):
    frozen = load_recipe(write("ft.yaml", FINETUNE))
    trained = load_recipe(write("all.yaml", FINETUNE.replace("freeze: trunk_and_unembedding", "freeze: none")))
    a, b = plan_arm("frozen", frozen), plan_arm("all", trained)
    m, d = frozen.model, frozen.model.d_model
    module = 2 * d + 2 * d * d + (2 * d * d + 2 * d * 2 * 8 + 3 * d * 64 + 2 * d) + d
    assert (a.trainable_params, b.trainable_params) == (module, b.params.total)
    assert a.params == b.params and a.flops_per_token.total < b.flops_per_token.total
    assert a.as_dict()["trainable_params"] == module and m.tie_embeddings is False


def test_recipes_without_the_new_fields_hash_and_resolve_as_before(write):
    recipe = load_recipe(write("tiny.yaml", TINY))
    text = resolved_yaml(recipe)
    assert "init_from" not in text and "freeze" not in text
    frozen = load_recipe(write("f.yaml", TINY), ["train.freeze=trunk_and_unembedding"])
    assert recipe_hash(frozen) != recipe_hash(recipe) and "freeze: trunk_and_unembedding" in resolved_yaml(frozen)
    assert recipe_hash(load_recipe(write("n.yaml", TINY), ["train.freeze=none"])) == recipe_hash(recipe)



def test_freezing_without_a_checkpoint_is_warned_about(write, cli):
    result = cli("plan", write("tiny.yaml", TINY), "train.freeze=trunk_and_unembedding")
    assert result.exit_code == 0 and "freezes a randomly initialised trunk" in result.output
