"""`harness run` on tiny versions of both probes: two arms each train a few steps, the evaluate
stage writes per-example probe rows (the same examples for both arms, so gains can be paired)
and the probe metrics in eval/summary.json, and `harness compare` on the two runs writes the
probe's gain column and its verdict row (the path the committed probe studies take)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECIPE = """\
recipe_version: 1
name: {name}
model: {{stp_layers: 2, d_model: 16, n_heads: 2, n_kv_heads: 1, ffn_hidden: 32, vocab_size: {vocab}, seq_len: 64}}
objective: {objective}
data:
  source: {source}
  tokenizer: {{kind: vocabulary}}
  decontaminate: {{enabled: false}}
  val_fraction: 0.1
train: {{steps: 4, global_batch_size: 4, micro_batch_size: 2, num_threads: 1, eval_every: 4, eval_batches: 1,
        checkpoint_every: 4, optimizer: {{lr: 0.01}}, schedule: {{warmup_steps: 1}}}}
eval: {{enabled: false, per_position: false, acceptance: false, analysis_batch_size: 4, probes: [{probe}]}}
track: {{experiment: tests}}
"""
PROBES = {
    "induction": ("{kind: induction, train_documents: 120, test_documents: 5}", 256),
    "polynomial": ("{kind: polynomial, train_documents: 600, test_per_ops: 4, train_max_ops: 2, test_max_ops: 3}", 16),
}
VERDICTS = {"supported at this scale", "contradicted at this scale", "not distinguishable at this scale", "not testable"}
ARMS = {"stp": "{kind: stp}", "meta_n2": "{kind: meta, n: 2}", "deepseek": "{kind: deepseek, depth: 1}"}


def _rows(run_dir: Path, probe: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "eval" / f"{probe}_greedy.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("probe, arms", [("induction", ("stp", "meta_n2")), ("polynomial", ("stp", "deepseek"))])
def test_two_arms_train_and_get_paired_probe_rows(probe, arms, write, cli, tmp_path):
    source, vocab = PROBES[probe]
    runs = {}
    for arm in arms:
        path = write(f"{probe}_{arm}.yaml", RECIPE.format(name=f"{probe}_{arm}", vocab=vocab, objective=ARMS[arm],
                                                           source=source, probe=probe))
        result = cli("run", path, "--runs", tmp_path / "runs")
        assert result.exit_code == 0, result.output + result.stderr
        (run_dir,) = (tmp_path / "runs").glob(f"{probe}_{arm}-*")
        runs[arm] = run_dir
    first, second = (_rows(runs[arm], probe) for arm in arms)
    assert first and [r["task_id"] for r in first] == [r["task_id"] for r in second]
    assert all(r["status"] in ("passed", "failed") and isinstance(r["correct"], bool) for r in first + second)
    for arm, rows in zip(arms, (first, second)):
        summary = json.loads((runs[arm] / "eval" / "summary.json").read_text())
        assert summary["probe_test_sha256"] and summary["probe_generator"] == f"{probe} v1"
        if probe == "induction":
            assert summary["induction/targets"] == len(rows)
            assert summary["induction/accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
        else:
            assert summary["polynomial/expressions"] == len(rows) == 12
            assert summary["polynomial/exact_match_ood"] == pytest.approx(
                sum(r["correct"] for r in rows if r["ops"] == 3) / 4)
            assert {"polynomial/exact_match_m01", "polynomial/coefficient_accuracy_id"} <= set(summary)
    out = tmp_path / "compare"
    result = cli("compare", runs[arms[0]], runs[arms[1]], "--baseline", f"{probe}_{arms[0]}", "--out", out,
                 "--no-mlflow")
    assert result.exit_code == 0, result.output + result.stderr
    document = json.loads((out / "comparison.json").read_text())
    section = "4.1" if probe == "induction" else "4.2"
    rows = [v for v in document["verdicts"] if v["claim"].startswith(f"Gloeckle et al. Sec. {section}")]
    assert rows and all(v["arms"].startswith(f"{probe}_{arms[1]} vs {probe}_{arms[0]}") for v in rows)
    assert all(v["verdict"] in VERDICTS and v["statistic"] and v["text"] for v in rows)
    metric = "induction/accuracy" if probe == "induction" else "polynomial/exact_match_ood"
    gain = document["arms"][1]["gains"][metric]
    # One seed per arm: the gain is reported, with no interval across seeds (none can be measured) and
    # the data-sampling interval beside it; the verdict rows say why they cannot claim.
    assert gain["unit"] == "percentage points" and gain["low"] is None and gain["high"] is None
    assert gain["data_low"] <= gain["mean"] <= gain["data_high"]
