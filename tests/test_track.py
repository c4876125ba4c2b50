"""Tracking: the run directory keeps everything; an unreachable store does not stop the run;
`harness sync` uploads it later, once."""

from __future__ import annotations

import json

import pytest

from harness.track import Tracker, TrackConfig, flatten, sync_run_dir

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _record(tracker: Tracker) -> None:
    tracker.start({"model.d_model": "16", "train.seed": "0"}, {"harness.recipe_hash": "abc"}, "tiny-run")
    for step in range(1, 6):
        tracker.log_metrics({"loss/depth_1": 5.0 - step / 10, "lr": 0.001}, step)
    tracker.finish()


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_live_tracking_to_a_local_store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracker = Tracker(tmp_path / "run", TrackConfig(experiment="t", flush_every=2))
    _record(tracker)
    assert tracker.problem is None
    run = _client(uri).get_run(tracker.run_id)
    assert run.data.params["model.d_model"] == "16" and run.data.tags["harness.recipe_hash"] == "abc"
    history = _client(uri).get_metric_history(tracker.run_id, "loss/depth_1")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    assert json.loads((tmp_path / "run" / "track" / "state.json").read_text())["synced"] is True


def test_unreachable_store_keeps_everything_and_sync_uploads_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    tracker = Tracker(tmp_path / "run", TrackConfig(experiment="t"))
    _record(tracker)  # must not raise
    assert tracker.problem and "unreachable" in tracker.problem
    assert "harness sync" in capsys.readouterr().out
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
        [4.9, 4.8, 4.7, 4.6, 4.5])
    assert sync_run_dir(tmp_path / "run") == run_id  # already synced: nothing uploaded twice
    assert len(_client(uri).search_runs([run.info.experiment_id])) == 1


def test_resume_sets_aside_later_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    tracker = Tracker(tmp_path / "run", TrackConfig(), enabled=False)
    _record(tracker)
    tracker.note_resume(3)
    kept = [json.loads(l)["step"] for l in (tmp_path / "run/track/metrics.jsonl").read_text().splitlines()]
    moved = [json.loads(l)["step"] for l in (tmp_path / "run/track/metrics.replaced.jsonl").read_text().splitlines()]
    assert kept == [1, 2, 3] and moved == [4, 5]
