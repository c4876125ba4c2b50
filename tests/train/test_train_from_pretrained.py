"""Training from a pretrained checkpoint (issue 26), end to end through `harness run` on CPU.

A laptop-like export is made here (a tiny STP trained for a few steps and exported), then:
a DeepSeek module added with the trunk and unembedding frozen trains 50 steps, its acceptance
rises above its value at initialisation while the next-token logits stay bit for bit the
checkpoint's; the same module with nothing frozen changes them; post-hoc Meta heads and the
untouched checkpoint (everything frozen) export in today's layouts; a run resumes from its
own checkpoints and refuses to resume once the checkpoint it started from has changed.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from tests.train.test_train_pipeline import losses, only_run

pytestmark = pytest.mark.slow

DATA = "data: {source: {kind: stdlib, max_files: 30}, decontaminate: {enabled: false}}"
QUIET = ("track: {enabled: false}\n"
         "eval: {enabled: false, per_position: false, acceptance: false, canonical_nll: false, trajectory: false}\n")
START = f"""\
recipe_version: 1
name: start
model: {{stp_layers: 2, d_model: 32, n_heads: 2, n_kv_heads: 1, ffn_hidden: 64, vocab_size: 320, seq_len: 32}}
{DATA}
train: {{steps: 60, global_batch_size: 4, micro_batch_size: 4, num_threads: 1, eval_every: 60, eval_batches: 2,
        checkpoint_every: 60, optimizer: {{lr: 0.01}}, schedule: {{warmup_steps: 2}}}}
{QUIET}"""


def from_checkpoint(init: Path, objective: str, freeze: str, steps: int, name: str = "posthoc") -> str:
    return textwrap.dedent(f"""\
        recipe_version: 1
        name: {name}
        model: {{init_from: '{init}'}}
        objective: {objective}
        {DATA}
        train: {{steps: {steps}, global_batch_size: 4, micro_batch_size: 4, num_threads: 1, eval_every: {steps},
                eval_batches: 2, checkpoint_every: {max(1, steps // 2)}, optimizer: {{lr: 0.01}},
                schedule: {{warmup_steps: 2}}, freeze: {freeze}}}
        """) + QUIET


def run(cli, recipe: Path, runs: Path, *overrides) -> Path:
    result = cli("run", recipe, "--runs", runs, *overrides)
    assert result.exit_code == 0, result.output + result.stderr
    return only_run(runs)


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """The laptop-like checkpoint: an STP export, and its validation loss."""
    from click.testing import CliRunner

    from harness.cli import main

    root = tmp_path_factory.mktemp("start")
    (root / "start.yaml").write_text(START)
    result = CliRunner().invoke(main, ["run", str(root / "start.yaml"), "--runs", str(root / "runs")])
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = only_run(root / "runs")
    return run_dir / "export", json.loads((run_dir / "eval" / "summary.json").read_text())["val"]


@pytest.fixture(scope="module")
def frozen_deepseek(start, tmp_path_factory):
    from click.testing import CliRunner

    from harness.cli import main

    root = tmp_path_factory.mktemp("posthoc")
    recipe = root / "posthoc.yaml"
    recipe.write_text(from_checkpoint(start[0], "{kind: deepseek, depth: 1}", "trunk_and_unembedding", 50))
    result = CliRunner().invoke(main, ["run", str(recipe), "--runs", str(root / "runs")])
    assert result.exit_code == 0, result.output + result.stderr
    return recipe, only_run(root / "runs")


def val_rows(run_dir: Path, n_predict: int, S: int = 32) -> list[torch.Tensor]:
    """The run's validation windows of S + n tokens (what every arm is validated on)."""
    from harness.data.loader import TokenWindows
    from harness.data.prepare import load_prepared

    prepared = load_prepared(Path(json.loads((run_dir / "data.json").read_text())["tokenizer_dir"]).parent)
    windows = TokenWindows(prepared, split="val", seq_len=S, row_length=S + n_predict, lookahead_reserve=8)
    return [torch.as_tensor(b) for b in windows.val_batches(8, 4)]


def next_token_logits(export: Path, batches: list[torch.Tensor]) -> torch.Tensor:
    from harness.model.export import load_exported

    model = load_exported(export).eval()
    with torch.no_grad():
        return torch.cat([model.next_token_logits(b[:, :32]) for b in batches])


def test_a_module_on_a_frozen_checkpoint_learns_and_leaves_its_next_token_logits_bit_identical(
        start, frozen_deepseek, one_thread):
    from harness.eval.analyses.acceptance import depth_agreement
    from harness.model.export import load_exported
    from harness.model.mtp_model import build_model
    from harness.model.pretrained import load_pretrained
    from harness.recipe import load_recipe

    export, start_val = start
    recipe_path, run_dir = frozen_deepseek
    rows = val_rows(run_dir, n_predict=2)
    assert torch.equal(next_token_logits(run_dir / "export", rows), next_token_logits(export, rows))
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())["val"]
    assert summary["val/depth_1"] == start_val["val/depth_1"]  # the same numbers, not close ones

    recipe = load_recipe(recipe_path)
    torch.manual_seed(recipe.train.seed)  # as training seeds before it builds the model
    initial = build_model(recipe.model, recipe.objective)
    assert load_pretrained(initial, export) == "trunk"
    before = depth_agreement(initial, rows, 32)["2"]
    after = depth_agreement(load_exported(run_dir / "export"), rows, 32)["2"]
    assert after["agree_greedy"] > before["agree_greedy"] + 0.05, (before, after)
    assert after["correct"] > before["correct"], (before, after)


def test_the_fine_tuned_deepseek_export_keeps_the_llama_and_use_mtp_layouts(frozen_deepseek):
    from transformers import AutoModelForCausalLM

    from harness.model.export import load_exported

    export = frozen_deepseek[1] / "export"
    config = json.loads((export / "config.json").read_text())
    mtp = json.loads((export / "mtp_config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 2
    assert mtp["objective"]["kind"] == "deepseek" and "init_from" not in mtp["trunk"]
    assert mtp["transformers_mtp"]["written"] and (export / "transformers_mtp" / "model.safetensors").is_file()
    ids = val_rows(frozen_deepseek[1], 2)[0][:, :32]
    with torch.no_grad():
        ours = load_exported(export).next_token_logits(ids)
        llama = AutoModelForCausalLM.from_pretrained(str(export)).eval()(ids).logits
        glm = AutoModelForCausalLM.from_pretrained(str(export / "transformers_mtp")).eval()(ids).logits
    assert (llama - ours).abs().max() < 1e-4 and (glm - ours).abs().max() < 1e-4


def test_the_same_module_with_nothing_frozen_changes_the_next_token_logits(start, tmp_path, write, cli):
    export, start_val = start
    recipe = write("unfrozen.yaml", from_checkpoint(export, "{kind: deepseek, depth: 1}", "none", 10))
    run_dir = run(cli, recipe, tmp_path / "runs")
    rows = val_rows(run_dir, 2)
    assert not torch.equal(next_token_logits(run_dir / "export", rows), next_token_logits(export, rows))
    assert json.loads((run_dir / "eval" / "summary.json").read_text())["val"]["val/depth_1"] != start_val["val/depth_1"]


def test_post_hoc_meta_heads_export_as_the_checkpoints_llama_plus_heads(start, tmp_path, write, cli):
    export, _ = start
    recipe = write("meta.yaml", from_checkpoint(export, "{kind: meta, n: 2}", "trunk_and_unembedding", 4, "meta"))
    run_dir = run(cli, recipe, tmp_path / "runs")
    out = run_dir / "export"
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2  # the checkpoint's layers
    from safetensors import safe_open

    with safe_open(str(out / "mtp_heads.safetensors"), "pt") as f:
        assert {k.split(".")[1] for k in f.keys()} == {"1"}  # head 2, beside the Llama model
    rows = val_rows(run_dir, 2)
    assert torch.equal(next_token_logits(out, rows), next_token_logits(export, rows))


def test_the_untouched_checkpoint_as_an_arm_exports_the_checkpoint_itself(start, tmp_path, write, cli):
    from safetensors.torch import load_file

    export, start_val = start
    recipe = write("untouched.yaml", from_checkpoint(export, "{kind: stp}", "trunk_and_unembedding", 3, "untouched"))
    run_dir = run(cli, recipe, tmp_path / "runs")
    ours, theirs = load_file(str(run_dir / "export" / "model.safetensors")), load_file(str(export / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert json.loads((run_dir / "eval" / "summary.json").read_text())["val"] == start_val


def test_a_run_resumes_from_its_own_checkpoint_and_not_from_a_changed_start(start, tmp_path, write, cli):
    export, _ = start
    init = shutil.copytree(export, tmp_path / "ckpt")
    recipe = write("posthoc.yaml", from_checkpoint(init, "{kind: deepseek, depth: 1}", "trunk_and_unembedding", 6))
    runs = tmp_path / "runs"
    run_dir = run(cli, recipe, runs)
    before = losses(run_dir)
    final = run_dir / "checkpoints" / "step_000006"
    states = next(final.rglob("*model_states.pt"))
    states.write_bytes(states.read_bytes()[: states.stat().st_size // 2])

    weights = init / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-4] + bytes(4))  # another checkpoint at the same path
    result = cli("run", recipe, "--runs", runs)
    assert result.exit_code == 2 and "init_weights" in result.stderr and "fix:" in result.stderr, result.stderr
    weights.write_bytes(original)
    result = cli("run", recipe, "--runs", runs)
    assert result.exit_code == 0, result.output + result.stderr
    assert (run_dir / "checkpoints" / "step_000006.corrupt").is_dir()
    assert losses(run_dir) == before  # steps 4-6 recomputed from step 3, bit for bit


def test_bf16_at_zero_1_exports_the_frozen_checkpoint_bit_for_bit(start, tmp_path, write, cli):
    """bf16 trains on rounded copies of the frozen weights and ZeRO-1 checkpoints hold only what
    the optimiser updates: the export takes the frozen part from the checkpoint it started from."""
    export, _ = start
    recipe = write("bf16.yaml", from_checkpoint(export, "{kind: deepseek, depth: 1}", "trunk_and_unembedding", 4))
    run_dir = run(cli, recipe, tmp_path / "runs", "train.zero_stage=1", "train.precision=bf16")
    rows = val_rows(run_dir, 2)
    assert torch.equal(next_token_logits(run_dir / "export", rows), next_token_logits(export, rows))
