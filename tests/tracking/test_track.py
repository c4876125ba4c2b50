"""Tracking: the run directory keeps everything; an unreachable store does not stop the run;
MLflow ends up holding every (metric, step) exactly once after crashes, resumes and replays;
`harness sync` uploads and repairs, once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.tracking.config import TrackConfig
from harness.tracking.sync import sync_run_dir
from harness.tracking.tracker import Tracker, flatten

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _state(run: Path) -> dict:
    return json.loads((run / "track" / "state.json").read_text())


def _local_steps(run: Path, key: str = "loss/depth_1") -> list[int]:
    rows = [json.loads(line) for line in (run / "track" / "metrics.jsonl").read_text().splitlines()]
    return sorted(r["step"] for r in rows if key in r)


def _steps(uri: str, run_id: str, key: str = "loss/depth_1") -> list[int]:
    return sorted(m.step for m in _client(uri).get_metric_history(run_id, key))


def _loss(step: int) -> float:
    return 5.0 - step / 100


def _log(tracker: Tracker, steps) -> None:
    for step in steps:
        tracker.log_metrics({"loss/depth_1": _loss(step), "lr": 0.001}, step)


def _start(tracker: Tracker) -> Tracker:
    tracker.start({"model.d_model": "16", "train.seed": "0"}, {"harness.recipe_hash": "abc"}, "tiny-run")
    return tracker


def _record(tracker: Tracker) -> None:
    _start(tracker)
    _log(tracker, range(1, 6))
    tracker.finish()


@pytest.fixture
def store() -> str:
    """The session's store (tests/conftest.py): a new sqlite store costs seconds of migrations."""
    return os.environ["MLFLOW_TRACKING_URI"]


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_live_tracking_to_a_local_store(tmp_path, store):
    tracker = Tracker(tmp_path / "run", TrackConfig(experiment="t", flush_every=2))
    _record(tracker)
    assert tracker.problem is None
    run = _client(store).get_run(tracker.run_id)
    assert run.data.params["model.d_model"] == "16" and run.data.tags["harness.recipe_hash"] == "abc"
    assert _steps(store, tracker.run_id) == [1, 2, 3, 4, 5]
    assert _state(tmp_path / "run")["synced"] is True


def test_unreachable_store_keeps_everything_and_sync_uploads_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    tracker = Tracker(tmp_path / "run", TrackConfig(experiment="t"))
    _record(tracker)  # must not raise
    assert tracker.problem and "unreachable" in tracker.problem
    assert "harness sync" in capsys.readouterr().err
    lines = (tmp_path / "run" / "track" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5
    with pytest.raises(Exception, match="unreachable"):
        sync_run_dir(tmp_path / "run")

    uri = f"sqlite:///{tmp_path / 'later.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = sync_run_dir(tmp_path / "run")
    run = _client(uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["train.seed"] == "0"
    assert [m.value for m in _client(uri).get_metric_history(run_id, "loss/depth_1")] == pytest.approx(
        [4.99, 4.98, 4.97, 4.96, 4.95])
    assert sync_run_dir(tmp_path / "run") == run_id  # already synced: nothing uploaded twice
    assert _steps(uri, run_id) == [1, 2, 3, 4, 5]
    assert len(_client(uri).search_runs([run.info.experiment_id])) == 1


def test_resume_sets_aside_later_steps(tmp_path, store):
    tracker = Tracker(tmp_path / "run", TrackConfig(), enabled=False)
    _record(tracker)
    tracker.note_resume(3)
    moved = [json.loads(l)["step"] for l in (tmp_path / "run/track/metrics.replaced.jsonl").read_text().splitlines()]
    assert _local_steps(tmp_path / "run") == [1, 2, 3] and moved == [4, 5]


def test_resume_keeps_the_scores_of_later_stages(tmp_path, store):
    """A fallback to an older checkpoint recomputes training's rows, not the evaluation of the
    export that is still there (its scores are logged at the final step)."""
    tracker = Tracker(tmp_path / "run", TrackConfig(), enabled=False)
    _start(tracker)
    _log(tracker, range(1, 6))
    tracker.log_metrics({"eval/humaneval/pass_at_1": 0.25}, 5)
    tracker.note_resume(3)
    rows = [json.loads(l) for l in (tmp_path / "run/track/metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["eval/humaneval/pass_at_1"]) for r in rows if "eval/humaneval/pass_at_1" in r] == [(5, 0.25)]
    assert _local_steps(tmp_path / "run") == [1, 2, 3]


# -- an exact record after crashes ------------------------------------------------------------


def test_steps_a_crash_left_unflushed_are_uploaded_on_resume(tmp_path, store):
    """kill -9 drops the metric buffer; the resumed run must still leave every step in MLflow."""
    run = tmp_path / "run"
    first = _start(Tracker(run, TrackConfig(experiment="t", flush_every=20)))
    _log(first, range(1, 14))  # the process dies here: steps 1-13 never reached MLflow
    second = _start(Tracker(run, TrackConfig(experiment="t", flush_every=20)))
    second.note_resume(10)  # the newest checkpoint is at step 10
    _log(second, range(11, 21))
    second.finish()
    assert second.run_id == first.run_id
    assert _steps(store, second.run_id) == list(range(1, 21))
    assert _local_steps(run) == list(range(1, 21))
    assert _state(run)["synced"] is True


def test_replayed_steps_are_not_uploaded_twice(tmp_path, store):
    run = tmp_path / "run"
    first = _start(Tracker(run, TrackConfig(experiment="t", flush_every=5)))
    _log(first, range(1, 11))
    first.note_checkpoint(10)  # 1-10 final and uploaded
    _log(first, range(11, 14))  # 11-13 in the buffer when the process dies
    second = _start(Tracker(run, TrackConfig(experiment="t", flush_every=5)))
    second.note_resume(8)  # step 10's checkpoint is corrupt: a fallback to step 8 computes 9-13 again
    _log(second, range(9, 21))
    second.finish()
    assert _steps(store, second.run_id) == list(range(1, 21))
    assert _steps(store, second.run_id, "lr") == list(range(1, 21))
    assert _state(run)["synced"] is True


def test_a_metric_logged_again_for_a_step_replaces_the_old_value_locally(tmp_path, store):
    tracker = _start(Tracker(tmp_path / "run", TrackConfig(experiment="t")))
    _log(tracker, range(1, 4))
    tracker.log_metrics({"eval/humaneval/pass_at_1": 0.0}, 3)
    tracker.log_metrics({"eval/humaneval/pass_at_1": 0.5}, 3)  # the evaluation was run again
    tracker.finish()
    rows = [json.loads(l) for l in (tmp_path / "run/track/metrics.jsonl").read_text().splitlines()]
    assert [r["eval/humaneval/pass_at_1"] for r in rows if "eval/humaneval/pass_at_1" in r] == [0.5]
    assert _local_steps(tmp_path / "run") == [1, 2, 3]


def test_sync_repairs_a_killed_run_in_place_and_marks_it_failed(tmp_path, store):
    run = tmp_path / "run"
    live = _start(Tracker(run, TrackConfig(experiment="repaired-in-place", flush_every=5)))
    _log(live, range(1, 14))  # kill -9 at step 13: MLflow holds 1-10, still RUNNING
    run_id = sync_run_dir(run)
    assert run_id == live.run_id  # mended, not duplicated
    synced = _client(store).get_run(run_id)
    assert synced.info.status == "FAILED" and synced.data.tags["harness.step_reached"] == "13"
    assert _steps(store, run_id) == list(range(1, 14))
    assert len(_client(store).search_runs([synced.info.experiment_id])) == 1
    assert sync_run_dir(run) == run_id and _steps(store, run_id) == list(range(1, 14))  # idempotent
    assert _state(run)["synced"] is True


def test_a_run_resumed_after_sync_continues_the_synced_mlflow_run(tmp_path, store):
    run = tmp_path / "run"
    live = _start(Tracker(run, TrackConfig(experiment="t", flush_every=5)))
    _log(live, range(1, 8))
    synced_id = sync_run_dir(run)
    again = _start(Tracker(run, TrackConfig(experiment="t", flush_every=5)))
    again.note_resume(7)
    _log(again, range(8, 11))
    again.finish()
    assert again.run_id == synced_id == _state(run)["run_id"]
    assert _client(store).get_run(synced_id).info.status == "FINISHED"
    assert _steps(store, synced_id) == list(range(1, 11))


def test_an_mlflow_run_that_disagrees_is_replaced_and_never_reopened(tmp_path, store):
    run = tmp_path / "run"
    live = _start(Tracker(run, TrackConfig(experiment="t", flush_every=1)))
    first_id = live.run_id
    _log(live, range(1, 4))
    live.note_checkpoint(3)
    # Step 3's checkpoint is lost and step 3 is recomputed with other bits (another machine).
    live.note_resume(2)
    live.log_metrics({"loss/depth_1": 1.0, "lr": 0.001}, 3)
    live.finish()
    new_id = _state(run)["run_id"]
    assert new_id != first_id and _state(run)["synced"] is True
    old = _client(store).get_run(first_id)
    assert old.data.tags["harness.superseded_by"] == new_id and old.info.status == "FAILED"
    assert [m.value for m in _client(store).get_metric_history(new_id, "loss/depth_1")] == [_loss(1), _loss(2), 1.0]
    assert sync_run_dir(run) == new_id
    reopened = _start(Tracker(run, TrackConfig(experiment="t")))
    assert reopened.run_id == new_id


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, store, capsys):
    run = tmp_path / "run"
    tracker = _start(Tracker(run, TrackConfig(experiment="t"), enabled=False))
    _log(tracker, range(1, 4))
    with open(run / "track" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss/depth_1": 4.9')  # a short write on a full disk
    run_id = sync_run_dir(run)
    assert "cut short" in capsys.readouterr().err
    assert _steps(store, run_id) == [1, 2, 3]
    resumed = _start(Tracker(run, TrackConfig(experiment="t"), enabled=False))
    resumed.note_resume(3)
    _log(resumed, [4])
    assert _local_steps(run) == [1, 2, 3, 4]


def test_sync_of_a_moved_run_directory_uploads_every_artifact(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    run = tmp_path / "runs" / "tiny-abc"
    tracker = _start(Tracker(run, TrackConfig(experiment="t")))
    _log(tracker, range(1, 3))
    (run / "recipe.yaml").write_text("name: tiny\n")
    (run / "eval").mkdir()
    (run / "eval" / "summary.json").write_text("{}")
    tracker.log_artifact(run / "recipe.yaml")
    tracker.log_artifact(run / "eval")
    tracker.finish()
    shutil.move(tmp_path / "runs", tmp_path / "moved")
    uri = f"sqlite:///{tmp_path / 'later.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = sync_run_dir(tmp_path / "moved" / "tiny-abc")
    assert {a.path for a in _client(uri).list_artifacts(run_id)} == {"recipe.yaml", "eval"}


def test_sync_to_another_store_uploads_there_too(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    _record(Tracker(run, TrackConfig(experiment="t")))
    for name in ("a.db", "b.db"):
        uri = f"sqlite:///{tmp_path / name}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        run_id = sync_run_dir(run)
        assert _steps(uri, run_id) == [1, 2, 3, 4, 5]
        assert _client(uri).get_run(run_id).info.status == "FINISHED"


def test_the_default_store_is_resolved_once_and_kept_on_resume_elsewhere(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path / "a")
    first = _start(Tracker(run, TrackConfig(experiment="t", flush_every=1)))
    _log(first, range(1, 3))
    assert _state(run)["uri"] == f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path / "b")  # a requeued job starts in another directory
    second = _start(Tracker(run, TrackConfig(experiment="t", flush_every=1)))
    _log(second, range(3, 5))
    second.finish()
    assert second.problem is None and second.run_id == first.run_id
    assert _steps(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}", first.run_id) == [1, 2, 3, 4]
    assert not (tmp_path / "b" / "mlflow.db").exists()


# -- a read-only store: one line, nothing lost ---------------------------------------------------


@pytest.fixture
def read_only_store(tmp_path):
    """A sqlite store on a read-only bind mount (root ignores file modes, not a ro mount)."""
    writable, ro = tmp_path / "store", tmp_path / "ro"
    writable.mkdir()
    ro.mkdir()
    uri = f"sqlite:///{writable / 'mlflow.db'}"
    _client(uri).search_experiments()  # creates the schema
    mounted = subprocess.run(["mount", "--bind", str(writable), str(ro)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True, capture_output=True)
        yield f"sqlite:///{ro / 'mlflow.db'}"
    finally:
        subprocess.run(["umount", "--lazy", str(ro)], check=False)  # the store may still be open


def test_a_read_only_store_costs_one_line(tmp_path, read_only_store, monkeypatch, capfd, cli):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", read_only_store)
    _record(Tracker(tmp_path / "run", TrackConfig(experiment="t")))
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert len([line for line in (out + err).splitlines() if line.strip()]) == 1, out + err
    result = cli("sync", tmp_path / "run")
    assert result.exit_code == 2
    out, err = capfd.readouterr()
    assert "Traceback" not in result.stderr + out + err
    assert result.stderr.count("\n") == 1 and "refused" in result.stderr, result.stderr
    assert _local_steps(tmp_path / "run") == [1, 2, 3, 4, 5]


def test_artifacts_are_recorded_relative_to_the_run_directory(tmp_path, store):
    run = tmp_path / "run"
    tracker = _start(Tracker(run, TrackConfig(experiment="t"), enabled=False))
    (run / "plan.json").write_text("{}")
    tracker.log_artifact(run / "plan.json")
    entries = [json.loads(l) for l in (run / "track" / "artifacts.jsonl").read_text().splitlines()]
    assert entries == [{"artifact_dir": None, "path": "plan.json"}]
    assert not os.path.isabs(entries[0]["path"])


def test_sync_refuses_a_run_directory_in_use(tmp_path, store):
    from harness.errors import HarnessError
    from harness.run.lock import RunLock

    run = tmp_path / "run"
    _record(Tracker(run, TrackConfig(experiment="t"), enabled=False))
    with RunLock(run), pytest.raises(HarnessError, match="in use by another harness process"):
        sync_run_dir(run)
