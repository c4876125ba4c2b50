"""End to end through lm-eval: an oracle LM proves passes are counted, a tiny random Llama
proves any Hugging Face directory is scored offline, and the CLI ties it together."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.errors import HarnessError
from harness.eval.benchmarks.evaluate import evaluate_model, resolve_model_dir
from harness.eval.benchmarks.lmeval import rows_of, run_variant
from harness.eval.benchmarks.protocols import Variant, protocol_metrics, variants
from harness.eval.benchmarks.scoring import summarize, using_sandbox
from harness.eval.config import EvalConfig
from harness.eval.sandbox.runner import STATUSES


def oracle_lm(wrong_every: int = 0):
    """lm-eval's LM interface answering with the canonical solution (every `wrong_every`-th
    answer wrong), like lm-eval's own DummyLM: it tests the harness, not a model."""
    from lm_eval.api.model import LM

    class Oracle(LM):
        calls = 0

        def generate_until(self, requests, disable_tqdm=False):
            out = []
            for request in requests:
                Oracle.calls += 1
                doc = request.doc
                answer = doc.get("canonical_solution", doc.get("code"))
                out.append("    return None\n" if wrong_every and Oracle.calls % wrong_every == 0 else answer)
            return out

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

    return Oracle()


def test_lm_eval_path_counts_passes(any_sandbox):
    greedy = Variant("greedy", 1, None, None, (1,))
    with using_sandbox(any_sandbox):
        results = run_variant(oracle_lm(), ["humaneval", "mbpp"], greedy, max_gen_toks=None, limit=3, seed=0)
    for task, first in (("humaneval", "HumanEval/0"), ("mbpp", 11)):
        rows = rows_of(results, task, greedy)
        assert [r["status"] for r in rows] == ["passed"] * 3, rows
        assert rows[0]["task_id"] == first
    assert results["results"]["harness_humaneval"]["pass@1,execute"] == 1.0


def test_sampled_variant_gives_pass_at_k(any_sandbox):
    sampled = Variant("t0.8", 2, 0.8, 0.95, (1, 2))
    with using_sandbox(any_sandbox):
        results = run_variant(oracle_lm(wrong_every=2), ["humaneval"], sampled, max_gen_toks=64, limit=2, seed=0)
    rows = rows_of(results, "humaneval", sampled)
    assert [r["sample"] for r in rows] == [0, 1, 0, 1]
    summary = summarize(rows, sampled.ks)
    assert (summary["pass_at_1"], summary["pass_at_2"]) == (0.5, 1.0)
    config = results["configs"]["harness_humaneval_sampled"]
    assert config["repeats"] == 2 and config["generation_kwargs"]["temperature"] == 0.8


def test_meta_protocol_reports_best_temperature_per_k():
    cfg = EvalConfig(protocol="sampled", n_samples=4, temperatures=[0.2, 0.8], ks=[1, 2, 10])
    chosen = variants(cfg)
    assert [(v.name, v.ks) for v in chosen] == [("t0.2", (1, 2)), ("t0.8", (1, 2))]
    base = {"problems": 3, "samples": 12, "passed": 0, "failed": 12, "timeout": 0, "error": 0}
    per_variant = {"t0.2": {**base, "pass_at_1": 0.5, "pass_at_2": 0.6}, "t0.8": {**base, "pass_at_1": 0.4, "pass_at_2": 0.7}}
    metrics = protocol_metrics("mbpp", per_variant, chosen)
    assert metrics["mbpp/pass_at_1"] == 0.5 and metrics["mbpp/pass_at_1_temperature"] == 0.2
    assert metrics["mbpp/pass_at_2"] == 0.7 and metrics["mbpp/pass_at_2_temperature"] == 0.8
    assert metrics["mbpp/pass_at_2_t0.2"] == 0.6
    assert not any("@" in key for key in metrics)  # MLflow refuses '@' in metric names


def test_target_resolution(tmp_path, tiny_model):
    assert resolve_model_dir(tiny_model) == tiny_model
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "export")
    assert resolve_model_dir(run) == run / "export"
    with pytest.raises(HarnessError, match="neither a harness run directory"):
        resolve_model_dir(tmp_path)


def test_cli_scores_a_run_directory_offline(cli, tmp_path, tiny_model, default_sandbox, monkeypatch):
    """Done-when: `harness eval TARGET` on a run directory, offline, rows + summary written."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "export")
    result = cli("eval", run, "--tasks", "humaneval,mbpp", "--limit", "2", "--max-gen-toks", "16", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "humaneval/pass_at_1" in result.output and "sandbox " in result.output
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["protocol"] == "greedy" and summary["batch_size"] == 2 and summary["limit"] == 2
    assert summary["backend"] == "hf" and summary["context_length"] == 2048  # the tiny model's config
    assert summary["prompt_budget_mbpp"] == 2048 - 16 and summary["mbpp/truncated_prompts"] == 0
    assert summary["humaneval/problems"] == 2 and summary["mbpp/problems"] == 2
    assert 0.0 <= summary["mbpp/pass_at_1"] <= 1.0 and summary["lm_eval_version"]
    # what held while model code ran, in words (issue 12): the summary and the printed table
    assert summary["sandbox_verdicts"].startswith("decided by a checker outside the sandbox")
    assert summary["sandbox_memory"] in result.output and summary["sandbox_cgroup"] in result.output
    for task in ("humaneval", "mbpp"):
        rows = [json.loads(line) for line in (run / "eval" / f"{task}_greedy.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(r["status"] in STATUSES for r in rows)
    lm_eval_json = json.loads((run / "eval" / "lm_eval_greedy.json").read_text())
    assert lm_eval_json["configs"]["harness_humaneval"]["generation_kwargs"]["max_gen_toks"] == 16


@pytest.mark.slow
def test_meta_protocol_on_a_random_model(tmp_path, tiny_model, default_sandbox):
    cfg = EvalConfig(protocol="sampled", tasks=["humaneval"], limit=1, n_samples=2, temperatures=[0.6, 1.2],
                     ks=[1, 2], max_gen_toks=8, batch_size=2, num_threads=1, sandbox={"workers": 2})  # fmt: skip
    summary = evaluate_model(tiny_model, cfg, tmp_path)
    assert {"humaneval/pass_at_1_t0.6", "humaneval/pass_at_2_t1.2", "humaneval/pass_at_2_temperature"} <= set(summary)
    assert summary["n_samples"] == 2 and summary["temperatures"] == "0.6,1.2" and summary["top_p"] == 0.95
    assert len((tmp_path / "humaneval_t1.2.jsonl").read_text().splitlines()) == 2


def test_a_malformed_config_json_is_one_line(tmp_path, cli):
    (tmp_path / "config.json").write_text('{"model_type": "llama", ')  # cut short
    result = cli("eval", tmp_path, "--tasks", "humaneval", "--limit", "1")
    assert result.exit_code == 2 and "config.json is not valid JSON" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output + result.stderr


def test_the_eval_thread_count_is_restored(tmp_path, monkeypatch):
    """`eval.num_threads` must not leak into the next arm of a study (same process)."""
    import torch

    from harness.eval.benchmarks import evaluate
    from harness.eval.config import EvalConfig

    seen = []
    monkeypatch.setattr(evaluate, "_evaluate_model", lambda *a, **k: seen.append(torch.get_num_threads()) or {})
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    evaluate.evaluate_model(tmp_path, EvalConfig(num_threads=other), tmp_path / "out")
    assert seen == [other] and torch.get_num_threads() == before
