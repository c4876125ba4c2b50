"""`harness run` under faults, in process: a stop signal in every stage (exit 75 with the
preemption marker, 130 for SIGINT, nothing half made), evaluation resuming where it
stopped, the run-directory lock, a failed data stage, a non-finite loss, `log_every`.
The signal is sent from inside the stage (by wrapping the function the stage calls), so
it lands exactly where the test wants it; the handler that catches it is the real one."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from harness.launch.preemption import PREEMPT_FILE_ENV, PREEMPTED_EXIT
from harness.run.lock import RunLock
from tests.train.test_train_pipeline import TINY_RUN, losses, only_run

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

FAST = ["train.steps=3", "train.checkpoint_every=1"]


@pytest.fixture
def tiny(write):
    return write("tiny.yaml", TINY_RUN)


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "preempted.marker"  # what the generated sbatch script checks to requeue
    monkeypatch.setenv(PREEMPT_FILE_ENV, str(path))
    return path


def _signal_inside(monkeypatch, module, name: str, sig: signal.Signals, *, after: bool = False):
    """Replace module.name by a wrapper that sends `sig` to this process (before or after the
    real call), as Slurm's warning would arrive in the middle of that stage."""
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        if not after:
            os.kill(os.getpid(), sig)
        out = real(*args, **kwargs)
        os.kill(os.getpid(), sig)
        return out

    monkeypatch.setattr(module, name, wrapper)


def _mlflow_status(run_dir: Path) -> str:
    from mlflow.tracking import MlflowClient

    state = json.loads((run_dir / "track" / "state.json").read_text())
    return MlflowClient().get_run(state["run_id"]).info.status


def test_a_signal_while_preparing_data_exits_75_and_leaves_no_build(tiny, tmp_path, cli, monkeypatch, marker):
    import harness.data.build as build

    cache = tmp_path / "cache"
    monkeypatch.setenv("MTP_HARNESS_CACHE", str(cache))
    _signal_inside(monkeypatch, build, "build", signal.SIGUSR1)
    result = cli("run", tiny, "--runs", tmp_path / "runs", *FAST)
    assert result.exit_code == PREEMPTED_EXIT, result.output + result.stderr
    assert "stopped by SIGUSR1 during the data stage" in " ".join(result.stderr.split())
    assert marker.read_text().strip() == "SIGUSR1"
    assert not list((cache / "data").glob(".tmp-*"))  # no half-built preparation
    monkeypatch.undo()
    monkeypatch.setenv("MTP_HARNESS_CACHE", str(cache))
    assert cli("run", tiny, "--runs", tmp_path / "runs", *FAST).exit_code == 0


def test_sigint_while_exporting_exits_130_without_marker_or_half_export(tiny, tmp_path, cli, monkeypatch, marker):
    import harness.model.export as export

    _signal_inside(monkeypatch, export, "export_hf", signal.SIGINT, after=True)
    result = cli("run", tiny, "--runs", tmp_path / "runs", *FAST)
    assert result.exit_code == 130, result.output + result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert not marker.exists()  # a user's Ctrl-C is no preemption: nothing requeues
    assert not (run_dir / "export.tmp").exists() and not (run_dir / "export").exists()
    assert _mlflow_status(run_dir) == "KILLED"
    monkeypatch.undo()
    again = cli("run", tiny, "--runs", tmp_path / "runs", *FAST)
    assert again.exit_code == 0 and "train: inputs unchanged, skipped" in again.stderr
    assert (run_dir / "export" / "model.safetensors").is_file()


def test_evaluation_resumes_where_a_signal_stopped_it(tiny, tmp_path, cli, monkeypatch, marker):
    """SIGTERM during the analyses, after HumanEval/MBPP finished: the rerun keeps the scores."""
    import harness.eval.analyses.analyze as analyze
    import harness.eval.benchmarks.evaluate as evaluate

    calls = []

    def scores(export_dir, cfg, out_dir, **kwargs):  # stands in for lm-eval + the sandbox (minutes)
        calls.append(out_dir)
        summary = {"humaneval/pass_at_1": 0.25}
        (Path(out_dir) / "summary.json").write_text(json.dumps(summary))
        return summary

    monkeypatch.setattr(evaluate, "evaluate_model", scores)
    real_analysis = analyze.analyze_export
    _signal_inside(monkeypatch, analyze, "analyze_export", signal.SIGTERM)
    args = ("run", tiny, "--runs", tmp_path / "runs", *FAST, "eval.enabled=true", "eval.tasks=[humaneval]")
    result = cli(*args)
    assert result.exit_code == PREEMPTED_EXIT, result.output + result.stderr
    assert "during the evaluate stage" in " ".join(result.stderr.split()) and marker.read_text().strip() == "SIGTERM"
    run_dir = only_run(tmp_path / "runs")
    assert not (run_dir / "eval").exists() and len(calls) == 1
    monkeypatch.setattr(analyze, "analyze_export", real_analysis)
    resumed = cli(*args)
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert len(calls) == 1, "HumanEval/MBPP ran again"
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["humaneval/pass_at_1"] == 0.25 and "position/loss_mean" in summary
    assert not (run_dir / "eval.tmp").exists()


def test_a_signal_while_tracking_closes_the_mlflow_run_as_killed(tiny, tmp_path, cli, monkeypatch, marker):
    import harness.run.curves as curves

    _signal_inside(monkeypatch, curves, "plot_run_losses", signal.SIGUSR1)
    result = cli("run", tiny, "--runs", tmp_path / "runs", *FAST)
    assert result.exit_code == PREEMPTED_EXIT, result.output + result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert _mlflow_status(run_dir) == "KILLED"
    monkeypatch.undo()
    assert cli("run", tiny, "--runs", tmp_path / "runs", *FAST).exit_code == 0
    assert _mlflow_status(run_dir) == "FINISHED"


def test_a_second_run_in_the_same_directory_refuses_in_one_line(tiny, tmp_path, cli):
    assert cli("run", tiny, "--runs", tmp_path / "runs", *FAST).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    with RunLock(run_dir):  # another `harness run` holds it
        result = cli("run", tiny, "--runs", tmp_path / "runs", *FAST)
    assert result.exit_code == 2
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]  # warnings may come before it
    assert f"is in use by another harness process (pid {os.getpid()}" in line and "Traceback" not in result.stderr


def test_a_lock_left_by_a_dead_process_is_taken_over(tiny, tmp_path, cli):
    assert cli("run", tiny, "--runs", tmp_path / "runs", *FAST).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    (run_dir / "run.lock").write_text(json.dumps({"pid": 2**22 + 1, "host": "gone", "since": "then"}))
    result = cli("run", tiny, "--runs", tmp_path / "runs", *FAST)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"left by pid {2**22 + 1} on gone, which is no longer running" in " ".join(result.stderr.split())


def test_a_failed_data_stage_leaves_no_run_directory(write, tmp_path, cli):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bad.py").write_bytes(b"\xff\xfe not utf-8\n" * 20)
    recipe = write("bad.yaml", TINY_RUN.replace("{kind: stdlib, max_files: 30}", f"{{kind: local, path: '{corpus}'}}")
                   .replace("decontaminate: {enabled: false}", "decontaminate: {enabled: false}, strict_utf8: true"))
    result = cli("run", recipe, "--runs", tmp_path / "runs")
    assert result.exit_code == 2 and "not UTF-8" in result.stderr
    assert not [p for p in (tmp_path / "runs").iterdir()]


def test_a_non_finite_loss_stops_keeps_the_last_good_checkpoint_and_exports_nothing(tiny, tmp_path, cli):
    result = cli("run", tiny, "--runs", tmp_path / "runs", *FAST, "train.optimizer.lr=1e30",
                 "train.schedule.warmup_steps=0", "train.optimizer.grad_clip=0")
    assert result.exit_code == 2, result.output + result.stderr
    assert "the loss is not finite at step" in result.stderr and "fix:" in result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert not (run_dir / "export").exists()
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert ckpts and f"{ckpts[-1]}, is kept" in result.stderr
    bad_step = int(result.stderr.split("not finite at step ")[1].split()[0])
    assert max(losses(run_dir)) == bad_step - 1  # the bad step is not in the record
    assert _mlflow_status(run_dir) == "FAILED"


def test_log_every_holds_after_the_first_validation(tiny, tmp_path, cli):
    result = cli("run", tiny, "--runs", tmp_path / "runs", "train.log_every=3", "train.eval_every=2")
    assert result.exit_code == 0, result.output + result.stderr
    assert sorted(losses(only_run(tmp_path / "runs"))) == [2, 3, 4, 6, 8]  # every 3rd, validations, the last


def test_every_validation_logs_the_next_token_loss_under_one_name(tiny, tmp_path, cli):
    """`val/next_token_loss` is the headline MLflow compares across objectives (`loss/total`
    weighs in the MTP depths); it is depth 1's validation loss, logged with every validation."""
    from harness import rundir

    result = cli("run", tiny, "--runs", tmp_path / "runs", "train.eval_every=2", "objective.kind=deepseek",
                 "objective.depth=1", "name=tiny_ds")
    assert result.exit_code == 0, result.output + result.stderr
    rows = [r for r in rundir.read_jsonl(only_run(tmp_path / "runs") / "track" / "metrics.jsonl") if "val/depth_1" in r]
    assert rows and all(r["val/next_token_loss"] == r["val/depth_1"] and "val/depth_2" in r for r in rows)


@pytest.mark.parametrize(("stage", "waits"), [("train", True), ("export", False), ("evaluate", False)])
def test_a_stop_after_training_does_not_wait_in_a_barrier(write, tmp_path, monkeypatch, stage, waits):
    """The ranks of a shared evaluation may each sit in a different collective when a signal
    lands; a barrier then could pair with the wrong one. Up to training every rank waits."""
    from harness.launch.preemption import Preemption
    from harness.ranks import Dist
    from harness.run.pipeline import Pipeline

    pipeline = Pipeline(write("tiny.yaml", TINY_RUN), [], tmp_path / "runs")
    pipeline.dist, pipeline.stage = Dist(1, 1, 2), stage
    preemption = Preemption()
    preemption.received = signal.SIGUSR1
    seen = {}
    monkeypatch.setattr(Preemption, "finish", lambda self, rank, wait_for_ranks: seen.update(wait=wait_for_ranks))
    pipeline._stopped(preemption)
    assert seen["wait"] is waits
