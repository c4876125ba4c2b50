"""`harness run` end to end on a tiny recipe: stages, caching, ZeRO stages, checkpoint
fallback, tracking offline then synced, corpus changes refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_RUN = """\
recipe_version: 1
name: tiny
model: {stp_layers: 2, d_model: 32, n_heads: 2, n_kv_heads: 1, ffn_hidden: 64, vocab_size: 320, seq_len: 32}
objective: {kind: deepseek, depth: 1}
data: {source: {kind: stdlib, max_files: 30}, decontaminate: {enabled: false}}
train: {steps: 8, global_batch_size: 4, micro_batch_size: 2, num_threads: 1, eval_every: 4, eval_batches: 2,
        checkpoint_every: 3, keep_checkpoints: 2, optimizer: {lr: 0.01}, schedule: {warmup_steps: 2}}
track: {experiment: tests}
eval: {enabled: false}
"""


def losses(run_dir: Path, key: str = "loss/depth_1") -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "track" / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in rows if key in r}


def only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture
def tiny(write):
    return write("tiny.yaml", TINY_RUN)


@pytest.mark.slow
def test_run_end_to_end_then_every_stage_is_skipped(tiny, tmp_path, cli, monkeypatch):
    result = cli("run", tiny, "--runs", tmp_path / "runs")
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = only_run(tmp_path / "runs")
    for name in ("recipe.yaml", "plan.json", "provenance.json", "data.json", "stages.json", "export/config.json",
                 "export/mtp_heads.safetensors", "eval/summary.json", "plots/loss_curves.png", "logs/harness.log"):
        assert (run_dir / name).exists(), name
    steps = losses(run_dir)
    assert sorted(steps) == list(range(1, 9))
    val = json.loads((run_dir / "eval" / "summary.json").read_text())["val"]
    assert set(val) == {"val/depth_1", "val/depth_2"}
    state = json.loads((run_dir / "track" / "state.json").read_text())
    assert state["synced"] is True

    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run = client.get_run(state["run_id"])
    assert run.data.params["objective.kind"] == "deepseek"
    assert run.data.tags["harness.recipe_hash"] and run.data.tags["version.deepspeed"]
    assert len(client.get_metric_history(run.info.run_id, "loss/depth_2")) == 8
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recipe.yaml", "plots", "eval"} <= artifacts

    again = cli("run", tiny, "--runs", tmp_path / "runs")
    assert again.exit_code == 0
    assert again.stderr.count("inputs unchanged, skipped") >= 4  # train, export, evaluate, track
    assert losses(run_dir) == steps

    # Stages record paths inside the run directory relative to it: the runs directory moved,
    # and named from another working directory, still skips every finished stage.
    (tmp_path / "runs").rename(tmp_path / "moved")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    moved = cli("run", tiny, "--runs", "../moved")
    assert moved.exit_code == 0, moved.output + moved.stderr
    assert "train: done" not in moved.stderr and "evaluate: done" not in moved.stderr
    assert moved.stderr.count("inputs unchanged, skipped") >= 5  # plan, train, export, evaluate, track


@pytest.mark.slow
def test_zero_stages_train_to_the_same_losses(tiny, tmp_path, cli):
    per_stage = {}
    for stage in (0, 1, 2, 3):
        result = cli("run", tiny, "--runs", tmp_path / f"z{stage}", f"train.zero_stage={stage}", "train.steps=3")
        assert result.exit_code == 0, result.output + result.stderr
        per_stage[stage] = losses(only_run(tmp_path / f"z{stage}"))
    assert len(per_stage[0]) == 3 and per_stage[0][3] < per_stage[0][1]
    for stage in (1, 2, 3):
        for step, loss in per_stage[0].items():
            assert per_stage[stage][step] == pytest.approx(loss, abs=1e-5), (stage, step)


@pytest.mark.slow
def test_corrupt_final_checkpoint_falls_back_to_the_previous(tiny, tmp_path, cli):
    runs = tmp_path / "runs"
    assert cli("run", tiny, "--runs", runs).exit_code == 0
    run_dir = only_run(runs)
    before = losses(run_dir)
    final = run_dir / "checkpoints" / "step_000008"
    states = next(final.rglob("*model_states.pt"))
    states.write_bytes(states.read_bytes()[: states.stat().st_size // 2])
    result = cli("run", tiny, "--runs", runs)
    assert result.exit_code == 0, result.output + result.stderr
    assert "step_000008 is corrupt" in result.output + result.stderr
    assert (run_dir / "checkpoints" / "step_000008.corrupt").is_dir()
    assert losses(run_dir) == before  # steps 7-8 recomputed from step 6, bit for bit


@pytest.mark.slow
def test_unreachable_tracking_store_then_sync(tiny, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = cli("run", tiny, "--runs", tmp_path / "runs", "train.steps=3")
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert "harness sync" in result.output + result.stderr
    assert json.loads((run_dir / "track" / "state.json").read_text())["synced"] is False

    uri = f"sqlite:///{tmp_path / 'later.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    synced = cli("sync", run_dir)
    assert synced.exit_code == 0, synced.output + synced.stderr
    from mlflow.tracking import MlflowClient

    run_id = json.loads((run_dir / "track" / "state.json").read_text())["run_id"]
    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "loss/depth_1")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == [losses(run_dir)[s] for s in (1, 2, 3)]


@pytest.mark.slow
def test_resuming_on_a_changed_corpus_is_refused(write, tmp_path, cli):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"m{i}.py").write_text(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" * 30)
    recipe = write("local.yaml", TINY_RUN.replace("{kind: stdlib, max_files: 30}", f"{{kind: local, path: '{corpus}/*.py'}}"))
    runs = tmp_path / "runs"
    assert cli("run", recipe, "--runs", runs, "train.steps=3", "train.checkpoint_every=1").exit_code == 0
    (corpus / "m0.py").write_text("print('changed')\n" * 50)
    result = cli("run", recipe, "--runs", runs, "train.steps=3", "train.checkpoint_every=1")
    assert result.exit_code == 2
    assert "manifest_hash" in result.stderr and "fix:" in result.stderr
