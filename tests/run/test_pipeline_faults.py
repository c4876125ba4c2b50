"""`harness run`'s records under the faults that used to leave them wrong: a corrupt newest
checkpoint (the eval scores stay and the run is closed FINISHED), a kill -9 right after the
MLflow run is created (the rerun adopts it), an unreadable stage output (redone, not
trusted), a run directory the filesystem will not write (one line with the path and the fix).
Tracking goes to a real `mlflow server` over loopback HTTP."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from harness import rundir
from tests.faults import harness_at
from tests.train.test_train_pipeline import TINY_RUN, only_run

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

FAST = ["train.steps=3", "train.checkpoint_every=1"]
SCORE = "eval/humaneval/pass_at_1"


@pytest.fixture
def tiny(write):
    return write("tiny.yaml", TINY_RUN)


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "track" / "state.json").read_text())


def _local(run_dir: Path, key: str) -> Counter:
    rows = [json.loads(line) for line in (run_dir / "track" / "metrics.jsonl").read_text().splitlines()]
    return Counter(r["step"] for r in rows if key in r)


def _live_runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return [r for r in runs if "harness.superseded_by" not in r.data.tags]


def _error_line(result) -> str:
    """The one error line (warnings about the recipe may come before it), never a traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    return errors[0]


def _remote(uri: str, run_id: str, key: str) -> Counter:
    from mlflow.tracking import MlflowClient

    return Counter(m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key))


@pytest.fixture
def scores(monkeypatch):
    """HumanEval/MBPP replaced by a fixed score (lm-eval and the sandbox take minutes)."""
    import harness.eval.benchmarks.evaluate as evaluate

    def fake(export_dir, cfg, out_dir, **kwargs):
        summary = {"humaneval/pass_at_1": 0.25}
        (Path(out_dir) / "summary.json").write_text(json.dumps(summary))
        return summary

    monkeypatch.setattr(evaluate, "evaluate_model", fake)
    return ["eval.enabled=true", "eval.tasks=[humaneval]"]


def test_a_corrupt_newest_checkpoint_keeps_the_eval_scores_and_closes_the_run(tiny, tmp_path, cli, monkeypatch,
                                                                                 mlflow_server, scores):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    args = ("run", tiny, "--runs", tmp_path / "runs", *FAST, *scores, "track.experiment=corrupt-newest")
    assert cli(*args).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    first = _state(run_dir)["run_id"]
    states = next((run_dir / "checkpoints" / "step_000003").rglob("*model_states.pt"))
    states.write_bytes(states.read_bytes()[: states.stat().st_size // 2])
    again = cli(*args)  # falls back to step 2, trains step 3 again; export and evaluate are unchanged
    assert again.exit_code == 0, again.output + again.stderr
    assert "step_000003 is corrupt" in again.output + again.stderr
    state = _state(run_dir)
    assert state["status"] == "FINISHED" and state["synced"] is True
    assert _local(run_dir, SCORE) == Counter({3: 1}) and _local(run_dir, "loss/depth_1") == Counter({1: 1, 2: 1, 3: 1})
    # Step 3 was final in MLflow and is computed again: the same losses, other timings
    # (tokens_per_s), so the exact record may need a replacement run; either way one live run.
    (live,) = _live_runs(mlflow_server, "corrupt-newest")
    assert live.info.run_id == state["run_id"] and live.info.status == "FINISHED"
    assert _remote(mlflow_server, live.info.run_id, SCORE) == Counter({3: 1})
    assert _remote(mlflow_server, live.info.run_id, "loss/depth_1") == Counter({1: 1, 2: 1, 3: 1})
    assert cli("sync", run_dir).exit_code == 0  # and a later sync keeps it so
    assert _state(run_dir)["run_id"] == live.info.run_id
    assert _remote(mlflow_server, live.info.run_id, SCORE) == Counter({3: 1})


# Effects of a live run on the store: creating its MLflow run (the train stage), uploading
# the artifacts and finishing it (the track stage).
RUN_KILL_POINTS = {"create": ("create_run", 1, "after"), "upload": ("log_artifact", 2, "after"),
                   "finish": ("set_terminated", 1, "before")}


@pytest.mark.parametrize("point", RUN_KILL_POINTS)
def test_a_run_killed_at_a_tracking_effect_leaves_one_exact_run_after_a_rerun(point, tiny, tmp_path, cli, monkeypatch,
                                                                              mlflow_server):
    from harness.tracking.record import TrackRecord

    experiment = f"run-killed-at-{point}"
    args = ("run", tiny, "--runs", tmp_path / "runs", *FAST, f"track.experiment={experiment}")
    method, nth, when = RUN_KILL_POINTS[point]
    killed = harness_at(f"mlflow.tracking.client:MlflowClient.{method}", nth, *args, when=when,
                        env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    (before,) = _live_runs(mlflow_server, experiment)  # made before the kill (its id maybe not saved)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = cli(*args)
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = only_run(tmp_path / "runs")
    (live,) = _live_runs(mlflow_server, experiment)
    assert live.info.run_id == before.info.run_id == _state(run_dir)["run_id"]
    assert live.info.status == "FINISHED" and live.data.params["objective.kind"] == "deepseek"
    assert _remote(mlflow_server, live.info.run_id, "loss/depth_1") == Counter({1: 1, 2: 1, 3: 1})
    wanted = {dest for _, _, dest in TrackRecord(run_dir).artifact_files()}
    assert wanted and _artifact_files(mlflow_server, live.info.run_id) >= wanted


def _artifact_files(uri: str, run_id: str, path: str | None = None) -> set[str]:
    from mlflow.tracking import MlflowClient

    out = set()
    for entry in MlflowClient(tracking_uri=uri).list_artifacts(run_id, path):
        out |= _artifact_files(uri, run_id, entry.path) if entry.is_dir else {entry.path}
    return out


def test_an_unreadable_summary_is_evaluated_again_not_trusted(tiny, tmp_path, cli):
    args = ("run", tiny, "--runs", tmp_path / "runs", *FAST)
    assert cli(*args).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    summary = run_dir / "eval" / "summary.json"
    good = json.loads(summary.read_text())
    summary.write_text('{"val": {"val/depth_1": 4.')  # a copy cut short, a bad edit
    compared = cli("compare", run_dir, "--out", tmp_path / "cmp", "--no-mlflow")
    assert compared.exit_code == 2 and compared.stderr.count("\n") == 1 and str(summary) in compared.stderr
    again = cli(*args)
    assert again.exit_code == 0, again.output + again.stderr
    assert "summary.json is missing or unreadable: not trusted, made again" in " ".join(again.stderr.split())
    assert "evaluate: done" in again.stderr
    assert json.loads(summary.read_text())["val"] == good["val"]


@pytest.fixture
def read_only(tmp_path):
    """A read-only folder (a bind mount remounted ro; root ignores file modes, not a ro mount)."""
    import subprocess

    writable, target = tmp_path / "writable", tmp_path / "ro"
    writable.mkdir()
    target.mkdir()
    if subprocess.run(["mount", "--bind", str(writable), str(target)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True, capture_output=True)
        yield target
    finally:
        subprocess.run(["umount", "--lazy", str(target)], check=False)


def test_a_read_only_runs_directory_is_one_line_naming_it(tiny, read_only, cli):
    line = _error_line(cli("run", tiny, "--runs", read_only / "runs", *FAST))
    assert str(read_only / "runs") in line and "read-only file system" in line and "fix: remount it read-write" in line


def test_a_run_directory_this_user_may_not_write_is_one_line(tiny, tmp_path, cli, monkeypatch):
    import harness.run.lock as lock

    real_open = os.open

    def refused(path, flags, *args):
        if str(path).endswith(rundir.LOCK):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(lock.os, "open", refused)
    line = _error_line(cli("run", tiny, "--runs", tmp_path / "runs", *FAST))
    assert "run.lock: this user may not" in line and "chown/chmod" in line


def test_a_spent_quota_in_a_stage_is_one_line_naming_the_file_and_stage(tiny, tmp_path, cli, monkeypatch):
    real = rundir.write_json

    def over_quota(path, obj):
        if Path(path).name == rundir.PLAN:
            raise OSError(errno.EDQUOT, "Disk quota exceeded", str(path))
        return real(path, obj)

    monkeypatch.setattr(rundir, "write_json", over_quota)
    line = _error_line(cli("run", tiny, "--runs", tmp_path / "runs", *FAST))
    assert "disk quota exceeded on" in line and "plan.json (the plan stage stopped" in line
