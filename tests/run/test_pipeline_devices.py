"""`harness run` chooses its device before it prepares anything: a bf16 recipe where torch
sees no CUDA is one line with the fix, and no run directory is left behind."""

from __future__ import annotations

import torch

from tests.train.test_train_pipeline import TINY_RUN


def test_a_bf16_run_without_cuda_is_refused_before_any_stage(write, tmp_path, cli, monkeypatch):
    monkeypatch.delenv("MTP_HARNESS_DEVICE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = write("tiny.yaml", TINY_RUN)
    result = cli("run", recipe, "--runs", tmp_path / "runs", "train.precision=bf16", "train.zero_stage=1")
    assert result.exit_code == 2, result.output + result.stderr
    assert "train.precision=bf16 asks for GPUs but torch sees no CUDA device" in result.stderr
    assert "MTP_HARNESS_DEVICE=cpu" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_vllm_evaluation_without_vllm_is_refused_before_training(write, tmp_path, cli, monkeypatch):
    from harness.eval.benchmarks import lmeval

    monkeypatch.setattr(lmeval, "vllm_importable", lambda: False)
    recipe = write("tiny.yaml", TINY_RUN)
    result = cli("run", recipe, "--runs", tmp_path / "runs", "eval.enabled=true", "eval.backend=vllm")
    assert result.exit_code == 2, result.output + result.stderr
    assert "eval.backend=vllm but vllm is not importable" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_evaluate_stage_scores_on_the_runs_device(write, tmp_path, monkeypatch):
    from harness.eval.benchmarks import evaluate
    from harness.ranks import Dist
    from harness.run.pipeline import Pipeline

    recipe = write("tiny.yaml", TINY_RUN.replace("eval: {enabled: false}", "eval: {enabled: true}"))
    pipeline = Pipeline(recipe, [], tmp_path / "runs")
    pipeline.dist, pipeline.device = Dist(0, 0, 8), "cuda:0"  # what devices.choose gives rank 0 of a GPU job
    handed = {}
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a, **kw: handed.update(kw) or {})
    (tmp_path / "staging").mkdir()
    pipeline._scores(tmp_path / "export", tmp_path / "staging")
    assert handed["device"] == "cuda:0"
