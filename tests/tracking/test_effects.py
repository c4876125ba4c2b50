"""The tracking state machine under faults, against a real `mlflow server` over loopback HTTP:
`harness sync` killed (kill -9) at each effect it makes (create, log, upload, replace,
finish), then run once more, leaves exactly one FINISHED MLflow run of the run directory,
with every (metric, step) once, every param and every artifact file; a record whose last
line was torn is mended from MLflow instead of MLflow losing the values; a read-only run
directory is said to be one, in one line, never blamed on the store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.tracking.config import TrackConfig
from harness.tracking.record import TrackRecord
from harness.tracking.sync import sync_run_dir
from harness.tracking.tracker import Tracker
from tests.faults import harness_at

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLIENT = "mlflow.tracking.client:MlflowClient"
ARTIFACTS = {"recipe.yaml", "plan.json", "eval/summary.json", "eval/humaneval_greedy.jsonl",
             "eval/lm_eval/results.json", "plots/loss_curves.png", "plots/val_loss.png"}


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _state(run: Path) -> dict:
    return json.loads((run / "track" / "state.json").read_text())


def make_record(run: Path, experiment: str) -> None:
    """A finished run's record, synced to the session's sqlite store (so a sync to the server
    is a second store: the case where a whole-directory `synced` flag lost artifacts)."""
    tracker = Tracker(run, TrackConfig(experiment=experiment, flush_every=2))
    tracker.start({"model.d_model": "16", "train.seed": "0"}, {"harness.recipe_hash": "abc"}, run.name)
    for step in range(1, 7):
        tracker.log_metrics({"loss/depth_1": 5.0 - step / 100, "lr": 0.001 * step}, step)
    tracker.note_checkpoint(6)
    tracker.log_metrics({"eval/humaneval/pass_at_1": 0.25, "eval/reference/unigram": 4.5}, 6)
    for name in ARTIFACTS:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(f"{name}\n")
    for name in ("recipe.yaml", "plan.json", "eval"):
        tracker.log_artifact(run / name)
    for name in ("loss_curves.png", "val_loss.png"):
        tracker.log_artifact(run / "plots" / name, "plots")
    tracker.finish()
    assert tracker.problem is None and _state(run)["synced"] is True


def _artifact_files(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for entry in client.list_artifacts(run_id, path):
        out |= _artifact_files(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return out


def assert_one_exact_finished_run(uri: str, run: Path, experiment: str) -> str:
    """Exactly one live (not superseded) MLflow run in the record's experiment (each test has its
    own); it is FINISHED and holds every local (metric, step) once with its value, every param
    and every artifact file."""
    client, record = _client(uri), TrackRecord(run)
    mine = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    live = [r for r in mine if "harness.superseded_by" not in r.data.tags]
    assert len(live) == 1, [(r.info.run_id, r.info.status, r.data.tags.get("harness.replaces")) for r in mine]
    (only,) = live
    assert only.info.run_id == _state(run)["runs"][uri] and only.info.status == "FINISHED"
    assert only.data.params == {"model.d_model": "16", "train.seed": "0"}
    local = record.keyed()
    for name in {name for name, _ in local}:
        history = client.get_metric_history(only.info.run_id, name)
        wanted = sorted((step, value) for (key, step), (value, _) in local.items() if key == name)
        assert sorted((m.step, m.value) for m in history) == wanted
    assert _artifact_files(client, only.info.run_id) == ARTIFACTS
    return only.info.run_id


# Each effect `harness sync` makes on a store it has not seen, in order: create the run (its
# params follow in the first log_batch), log the metrics, upload 7 files, finish.
KILL_POINTS = {
    "create": ("create_run", 1, "after"),
    "params": ("log_batch", 1, "after"),
    "metrics": ("log_batch", 2, "after"),
    "first-upload": ("log_artifact", 1, "before"),
    "mid-upload": ("log_artifact", 3, "after"),
    "finish": ("set_terminated", 1, "before"),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_sync_killed_at_any_effect_is_finished_by_the_next_one(point, tmp_path, mlflow_server, monkeypatch):
    run, experiment = tmp_path / "run", f"effects-{point}"
    make_record(run, experiment)
    method, nth, when = KILL_POINTS[point]
    killed = harness_at(f"{CLIENT}.{method}", nth, "sync", run, when=when, env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert killed.returncode == -9, killed.stdout + killed.stderr  # it died at the chosen effect
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    run_id = sync_run_dir(run)
    assert assert_one_exact_finished_run(mlflow_server, run, experiment) == run_id
    assert _state(run)["synced"] is True and not _state(run).get("pending")
    assert sync_run_dir(run) == run_id  # and again: nothing changes
    assert_one_exact_finished_run(mlflow_server, run, experiment)


def test_a_replacement_killed_after_its_creation_is_finished_not_made_again(tmp_path, mlflow_server, monkeypatch):
    run, experiment = tmp_path / "run", "effects-replace"
    make_record(run, experiment)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    first = sync_run_dir(run)
    # Step 3 recomputed with other bits (a resume on another machine): MLflow cannot change a
    # value, so the next sync replaces the run; it is killed right after creating the new one.
    TrackRecord(run).append(3, {"loss/depth_1": 1.0}, 0)
    killed = harness_at(f"{CLIENT}.create_run", 1, "sync", run, env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    new = sync_run_dir(run)
    assert new != first and assert_one_exact_finished_run(mlflow_server, run, experiment) == new
    old = _client(mlflow_server).get_run(first)
    assert old.data.tags["harness.superseded_by"] == new and old.info.status == "FAILED"


def test_a_torn_last_line_is_mended_from_mlflow_not_dropped_from_it(tmp_path, mlflow_server, monkeypatch, capsys):
    run, experiment = tmp_path / "run", "effects-torn"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    make_record(run, experiment)  # straight to the server: MLflow holds the eval scores too
    first = _state(run)["run_id"]
    metrics = run / "track" / "metrics.jsonl"
    text = metrics.read_text()
    assert "eval/humaneval/pass_at_1" in text.splitlines()[-1]
    metrics.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])  # the eval row, cut in half
    assert sync_run_dir(run) == first  # not replaced by a run without the scores
    assert "restored from MLflow" in " ".join(capsys.readouterr().err.split())
    values = TrackRecord(run).keyed()
    assert values[("eval/humaneval/pass_at_1", 6)][0] == 0.25 and values[("eval/reference/unigram", 6)][0] == 4.5
    assert_one_exact_finished_run(mlflow_server, run, experiment)


@pytest.fixture
def read_only(tmp_path):
    """read_only(path) -> the same folder seen through a read-only bind mount."""
    mounts = []

    def _mount(path: Path) -> Path:
        target = tmp_path / f"ro{len(mounts)}"
        target.mkdir()
        done = subprocess.run(["mount", "--bind", str(path), str(target)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot bind-mount here: {done.stderr.decode().strip()}")
        mounts.append(target)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True, capture_output=True)
        return target

    yield _mount
    for target in mounts:
        subprocess.run(["umount", "--lazy", str(target)], check=False)


def test_sync_of_a_read_only_run_directory_says_so_in_one_line(tmp_path, read_only, cli, monkeypatch, mlflow_server):
    run = tmp_path / "runs" / "tiny-abc"
    tracker = Tracker(run, TrackConfig(experiment="effects-ro"), enabled=False)
    tracker.start({"a": "1"}, {}, run.name)
    tracker.log_metrics({"loss/depth_1": 1.0}, 1)
    tracker.finish()
    ro_run = read_only(tmp_path / "runs") / "tiny-abc"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = cli("sync", ro_run)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert str(ro_run) in result.stderr and "read-only file system" in result.stderr and "fix:" in result.stderr
    assert "tracking store" not in result.stderr
