"""The analyses of a harness run: files and keys, from `analyze`, `harness eval RUN_DIR` and
`harness run` (whose evaluate stage runs them even with eval.enabled=false)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.eval.analyses.analyze import analyze
from harness.eval.analyses.heldout import document_rows
from harness.eval.config import EvalConfig
from harness.model.config import TrunkConfig
from harness.model.mtp_model import build_model
from tests.data.data_helpers import SMALL_VOCAB, prepare_small, shared_cache, small_config
from tests.eval.mtp_models import objective, training_path_position_losses

S, RESERVE = 32, 8
SMALL_EVAL = dict(analysis_batches=3, analysis_batch_size=4, speculative_prompts=2, speculative_prompt_tokens=8,
                  speculative_max_new_tokens=10)  # fmt: skip
ACCEPTANCE_KEYS = {"tokens_per_step", "speedup", "identical", "prompts", "new_tokens", "plain_s", "speculative_s",
                   "per_prompt"}
RECIPE = """\
recipe_version: 1
name: {name}
model: {{stp_layers: 4, d_model: 32, n_heads: 2, n_kv_heads: 1, ffn_hidden: 64, vocab_size: 512, seq_len: 32}}
objective: {objective}
data: {{source: {{kind: stdlib, max_bytes: 150000}}, val_fraction: 0.45}}
train: {{steps: {steps}, global_batch_size: 4, micro_batch_size: 4, num_threads: 1, eval_every: 2, eval_batches: 1,
        checkpoint_every: 2, optimizer: {{lr: 0.01}}, schedule: {{warmup_steps: 1}}}}
eval: {{enabled: false, analysis_batches: 3, analysis_batch_size: 4, speculative_prompts: 2,
       speculative_prompt_tokens: 8, speculative_max_new_tokens: 10}}
track: {{enabled: false}}
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    # Several validation documents (one held-out row each): 12 documents, ~45% to validation.
    return prepare_small(shared_cache(tmp_path_factory), small_config(val_fraction=0.45))


def model_for(objective_cfg):
    torch.manual_seed(0)
    cfg = TrunkConfig(stp_layers=4, d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64, vocab_size=SMALL_VOCAB, seq_len=S)
    return build_model(cfg, objective_cfg)


def run_analyze(model, prepared, out_dir, **changes):
    cfg = EvalConfig(**{**SMALL_EVAL, **changes})
    return analyze(model, prepared, cfg, out_dir, seq_len=S)


def documents(prepared, length: int) -> np.ndarray:
    """The held-out rows the analyses score: each validation document's first tokens."""
    rows, _ = document_rows(prepared, length, SMALL_EVAL["analysis_batches"] * SMALL_EVAL["analysis_batch_size"])
    return rows


def test_stp_writes_per_position_only(prepared, tmp_path):
    model = model_for(objective("stp"))
    summary = run_analyze(model, prepared, tmp_path)
    assert not (tmp_path / "acceptance.json").exists()
    losses = np.load(tmp_path / "per_position.npy")
    assert losses.shape == (len(documents(prepared, S + 1)), S) and losses.dtype == np.float32 and len(losses) > 1
    assert {"position/loss_first_bin", "position/loss_last_bin", "position/loss_mean"} <= set(summary)
    assert {"reference/unigram", "reference/bigram", "reference/skip_bigram"} <= set(summary)
    assert not any(key.startswith(("acceptance/", "speculative")) for key in summary)
    assert summary["analysis_threads"] == 1 and summary["analysis_seconds"] >= 0


@pytest.mark.parametrize("kind,fields", [("meta", {"n": 4}), ("deepseek", {"depth": 1})])
def test_every_arm_scores_the_same_rows(prepared, tmp_path, kind, fields):
    """The file's rows are the validation documents' first tokens, scored as the training
    path scores them on the objective's longer rows (same documents)."""
    objective_cfg = objective(kind, **fields)
    model = model_for(objective_cfg)
    summary = run_analyze(model, prepared, tmp_path)
    losses = np.load(tmp_path / "per_position.npy")
    own_rows = torch.from_numpy(documents(prepared, objective_cfg.row_length(S))).split(4)
    theirs = torch.cat([training_path_position_losses(model, rows) for rows in own_rows]).numpy()
    np.testing.assert_allclose(losses, theirs, rtol=1e-5, atol=1e-5)

    report = json.loads((tmp_path / "acceptance.json").read_text())
    depths = [str(k) for k in range(2, objective_cfg.n_predict + 1)]
    assert set(report) == {"depths", "speculative"} and sorted(report["depths"]) == depths
    for k in depths:
        assert set(report["depths"][k]) == {"agree_greedy", "correct", "n", "rows"}
        assert report["depths"][k]["n"] == len(documents(prepared, S + objective_cfg.n_predict)) * S
        assert summary[f"acceptance/depth_{k}/agree_greedy"] == report["depths"][k]["agree_greedy"]
    spec = report["speculative"]
    assert set(spec) == ACCEPTANCE_KEYS and spec["identical"] is True
    assert spec["prompts"] == 2 and spec["new_tokens"] <= 20
    per_prompt = spec["per_prompt"]  # per prompt, what the pooled figures are sums of
    assert len(per_prompt["new_tokens"]) == len(per_prompt["steps"]) == 2
    assert sum(per_prompt["new_tokens"]) == spec["new_tokens"]
    assert sum(per_prompt["new_tokens"]) / sum(per_prompt["steps"]) == pytest.approx(spec["tokens_per_step"])
    assert summary["speculative/tokens_per_step"] == spec["tokens_per_step"] >= 1.0
    assert summary["speculative/speedup"] == spec["speedup"] > 0


def test_switches(prepared, tmp_path):
    model = model_for(objective("meta", n=2))
    summary = run_analyze(model, prepared, tmp_path, per_position=False)
    assert (tmp_path / "acceptance.json").exists() and not (tmp_path / "per_position.npy").exists()
    assert not any(key.startswith("position/") for key in summary)


def write_run(tmp_path, prepared, objective_cfg, name="run"):
    """A run directory as `harness run` leaves it, minus training: recipe.yaml and export/."""
    from harness.model.export import export_hf

    run = tmp_path / name
    run.mkdir()
    text = RECIPE.format(name=name, objective=json.dumps(objective_cfg.model_dump(mode="json")), steps=2)
    (run / "recipe.yaml").write_text(text)
    export_hf(model_for(objective_cfg), run / "export", prepared.tokenizer_dir)
    return run


def test_cli_analyses_a_run_directory(prepared, tmp_path, cli, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("MTP_HARNESS_CACHE", str(shared_cache(tmp_path_factory)))  # the prepared data: a cache hit
    run = write_run(tmp_path, prepared, objective("deepseek", depth=1))
    (run / "eval").mkdir()
    (run / "eval" / "summary.json").write_text(json.dumps({"humaneval/pass_at_1": 0.0}))
    result = cli("eval", run, "--analysis-only")
    assert result.exit_code == 0, result.output + result.stderr
    assert "speculative/tokens_per_step" in result.output and "identical to greedy: True" in result.output
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["humaneval/pass_at_1"] == 0.0 and "acceptance/depth_2/correct" in summary
    assert np.load(run / "eval" / "per_position.npy").shape == (len(documents(prepared, S + 1)), S)
    # transformers' generate(use_mtp=True) on the export, beside ours (DeepSeek D=1)
    theirs = json.loads((run / "eval" / "acceptance.json").read_text())["transformers"]
    assert ACCEPTANCE_KEYS - {"speedup", "plain_s", "per_prompt"} <= set(theirs) and theirs["identical"] is True
    assert 1.0 <= theirs["tokens_per_step"] <= 2.0 and summary["speculative_transformers_identical"] is True
    assert "transformers generate(use_mtp=True)" in result.output


def test_cli_refuses_analysis_of_a_plain_model_directory(tmp_path, cli):
    (tmp_path / "config.json").write_text("{}")  # what marks a Hugging Face model directory
    result = cli("eval", tmp_path, "--analysis-only")
    assert result.exit_code == 2 and "need a harness run directory" in result.output + result.stderr


def test_pipeline_runs_the_analyses_without_the_code_benchmarks(prepared, write, tmp_path, cli, monkeypatch,
                                                                  tmp_path_factory):
    """eval.enabled=false skips HumanEval/MBPP generation only: STP gets per_position.*, the
    reference losses and the canonical-solution NLL, Meta also acceptance.json, and the
    metrics reach summary.json."""
    monkeypatch.setenv("MTP_HARNESS_CACHE", str(shared_cache(tmp_path_factory)))
    for name, objective_text in (("stp", "{kind: stp}"), ("meta", "{kind: meta, n: 2}")):
        recipe = write(f"{name}.yaml", RECIPE.format(name=name, objective=objective_text, steps=2))
        result = cli("run", recipe, "--runs", tmp_path / "runs", "eval.analysis_batches=1")
        assert result.exit_code == 0, result.output + result.stderr
        (run,) = (tmp_path / "runs").glob(f"{name}-*")
        summary = json.loads((run / "eval" / "summary.json").read_text())
        rows = document_rows(prepared, S + 1, 4)[0]  # eval.analysis_batches=1 x batch 4
        assert np.load(run / "eval" / "per_position.npy").shape == (len(rows), S)
        assert summary["reference/bigram"] < summary["reference/unigram"]
        assert (run / "eval" / "nll_humaneval.jsonl").is_file() and "nll/mbpp/bits_per_byte" in summary
        assert (run / "eval" / "per_position.csv").is_file() and "position/loss_last_bin" in summary
        assert "humaneval/pass_at_1" not in summary
        assert (run / "eval" / "acceptance.json").exists() == (name == "meta")
        assert ("speculative/speedup" in summary) == (name == "meta")


def test_trajectory_scores_every_kept_checkpoint_and_ends_with_the_export(prepared, write, tmp_path, cli, monkeypatch,
                                                                          tmp_path_factory):
    monkeypatch.setenv("MTP_HARNESS_CACHE", str(shared_cache(tmp_path_factory)))
    recipe = write("stp.yaml", RECIPE.format(name="traj", objective="{kind: stp}", steps=3))
    result = cli("run", recipe, "--runs", tmp_path / "runs", "train.checkpoint_every=1", "train.keep_checkpoints=3",
                 "eval.trajectory=true", "eval.canonical_nll=false")
    assert result.exit_code == 0, result.output + result.stderr
    (run,) = (tmp_path / "runs").glob("traj-*")
    with np.load(run / "eval" / "per_position_trajectory.npz") as found:
        steps, losses = found["steps"], found["losses"]
    final = np.load(run / "eval" / "per_position.npy")
    assert steps.tolist() == [1, 2, 3] and losses.shape == (3, *final.shape)
    np.testing.assert_array_equal(losses[-1], final)
    # Checkpoint 2 scored on its own: the same numbers the analysis gives that checkpoint's weights.
    from harness.eval.analyses.position_loss import position_losses
    from harness.eval.analyses.trajectory import kept_checkpoints
    from harness.recipe import load_recipe
    from harness.train.weights import fp32_state_dict

    resolved = load_recipe(run / "recipe.yaml")
    model = build_model(resolved.model, resolved.objective)
    model.load_state_dict(fp32_state_dict(kept_checkpoints(run)[1][1], 0))
    rows = torch.from_numpy(documents(prepared, S + 1)).split(4)
    np.testing.assert_allclose(losses[1], position_losses(model, rows), rtol=1e-5)
    assert not np.allclose(losses[0], losses[-1])
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["position/trajectory_checkpoints"] == 3
    # Three steps leave the model at the unigram distribution: the collapse check says so.
    assert summary["collapse/flagged"] == 1.0 and "unigram" in summary["collapse"][0]
