"""Tracking: every run's params, tags, metrics and artifacts, in its run directory first and
in MLflow when the tracking store answers.

The run directory is the durable copy (DESIGN.md): each record is appended to
`RUN_DIR/track/` before MLflow sees it, so a tracking server that is down, or goes down
mid-run, loses nothing; the run goes on and `harness sync RUN_DIR` uploads it later.
MLflow's conventions hold: `MLFLOW_TRACKING_URI` wins, else MLflow's local default
(`sqlite:///mlflow.db` in the working directory); telemetry is off.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.atomic import atomic_write_text

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


class TrackConfig(BaseModel):
    """The `track:` section. The store's address is not part of a recipe: it belongs to the
    machine (MLFLOW_TRACKING_URI), and a recipe must mean the same run everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    experiment: str = Field(default="mtp-harness", description="MLflow experiment name")
    tags: dict[str, str] = Field(default={}, description="extra tags on the MLflow run")
    flush_every: int = Field(default=20, ge=1, description="steps between metric uploads")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _quiet_mlflow_env() -> None:
    """Before importing mlflow: no telemetry, and an unreachable server fails in seconds
    instead of MLflow's default ~4 minutes of retries per call; its INFO chatter off."""
    import logging

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def reachable(uri: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether a tracking store answers; local stores always do."""
    if not uri.startswith(("http://", "https://")):
        return True, ""
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status == 200, f"HTTP {response.status}"
    except Exception as exc:  # any failure to answer means offline; the reason is kept
        return False, f"{type(exc).__name__}: {exc}"


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """Nested recipe -> MLflow params: dotted keys, JSON for lists, str for scalars."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return out


class Tracker:
    """Appends every record under RUN_DIR/track/ and mirrors it to MLflow while it answers."""

    def __init__(self, run_dir: Path, cfg: TrackConfig, *, enabled: bool = True):
        self.dir = Path(run_dir) / "track"
        self.cfg = cfg
        self.enabled = enabled and cfg.enabled
        self.client = None
        self.run_id: str | None = None
        self._pending: list[tuple[str, float, int, int]] = []
        self.problem: str | None = None

    # -- local record ------------------------------------------------------------------
    def _append(self, name: str, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def _state(self) -> dict:
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_state(self, **update: Any) -> None:
        state = {**self._state(), **update}
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "state.json", json.dumps(state, indent=1, sort_keys=True))

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, params: dict[str, str], tags: dict[str, str], run_name: str) -> None:
        """Record params and tags; open (or reopen, on resume) the MLflow run if possible."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True))
        (self.dir / "tags.json").write_text(json.dumps({**tags, **self.cfg.tags}, indent=1, sort_keys=True))
        self._save_state(run_name=run_name, experiment=self.cfg.experiment, synced=False)
        if not self.enabled:
            return
        self._guard(self._open_mlflow, params, {**tags, **self.cfg.tags}, run_name)

    def _open_mlflow(self, params, tags, run_name) -> None:
        uri = tracking_uri()
        ok, why = reachable(uri)
        if not ok:
            raise ConnectionError(f"tracking store {uri} is unreachable ({why})")
        _quiet_mlflow_env()
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        state = self._state()
        run_id = state.get("live_run_id")
        if run_id is None or state.get("live_uri") != uri:
            experiment = client.get_experiment_by_name(self.cfg.experiment)
            exp_id = experiment.experiment_id if experiment else client.create_experiment(self.cfg.experiment)
            run_id = client.create_run(exp_id, run_name=run_name).info.run_id
            client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()],
                             tags=[RunTag(k, v) for k, v in tags.items()])
            self._save_state(live_run_id=run_id, live_uri=uri)
        else:
            # A resumed run may carry new tags (the same training later run as a study arm).
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client, self.run_id = client, run_id

    def _guard(self, fn, *args) -> None:
        """Run an MLflow call; on failure go offline for the rest of the run, keep going."""
        try:
            fn(*args)
        except Exception as exc:  # the run must survive any tracking failure
            self.problem = f"{type(exc).__name__}: {exc}"
            self.client = None
            self._save_state(offline_reason=self.problem)
            print(f"warning: MLflow tracking is offline ({self.problem}); the run continues and "
                  f"keeps everything in {self.dir.parent}; upload later with `harness sync {self.dir.parent}`")

    def note_resume(self, step: int) -> None:
        """On resume from a checkpoint at `step`, set aside the records of later steps (they
        are about to be recomputed) so the record holds each step once; nothing is deleted."""
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return
        keep, later = [], []
        for line in path.read_text().splitlines():
            (later if line.strip() and json.loads(line)["step"] > step else keep).append(line)
        if later:
            with open(self.dir / "metrics.replaced.jsonl", "a", encoding="utf-8") as f:
                f.write("\n".join(later) + "\n")
            atomic_write_text(path, "".join(line + "\n" for line in keep))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        self._append("metrics.jsonl", {"step": step, "time_ms": stamp, **metrics})
        if self.client is not None:
            self._pending += [(k, float(v), stamp, step) for k, v in metrics.items()]
            if step % self.cfg.flush_every == 0:
                self.flush()

    def flush(self) -> None:
        if self.client is None or not self._pending:
            return
        pending, self._pending = self._pending, []
        self._guard(_upload_metrics, self.client, self.run_id, pending)

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        self._append("artifacts.jsonl", {"path": str(Path(path).resolve()), "artifact_dir": artifact_dir})
        if self.client is not None:
            self._guard(self.client.log_artifact, self.run_id, str(path), artifact_dir)

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        if self.client is not None:
            self._guard(self.client.set_terminated, self.run_id, status)
        if self.client is not None and self.problem is None:
            self._save_state(synced=True, run_id=self.run_id, status=status)
        else:
            self._save_state(synced=False, status=status)


def _upload_metrics(client, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    from mlflow.entities import Metric

    for i in range(0, len(rows), METRICS_PER_BATCH):
        chunk = rows[i : i + METRICS_PER_BATCH]
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in chunk])


def sync_run_dir(run_dir: Path, *, force: bool = False) -> str:
    """Upload a run directory's record to the tracking store; returns the MLflow run id.

    A run that was tracked live to the end is left alone (unless `force`). A run whose live
    tracking broke off is uploaded whole to a new MLflow run, and the partial one, if the
    store has it, is marked FAILED and tagged with its replacement, so nothing is lost and
    nothing is counted twice.
    """
    from harness.errors import HarnessError

    tdir = Path(run_dir) / "track"
    if not (tdir / "params.json").exists():
        raise HarnessError(f"{run_dir}: no tracking record (track/params.json)", fix="pass a harness run directory")
    tracker = Tracker(Path(run_dir), TrackConfig())
    state = tracker._state()
    if state.get("synced") and not force:
        return state["run_id"]
    uri = tracking_uri()
    ok, why = reachable(uri)
    if not ok:
        raise HarnessError(f"tracking store {uri} is unreachable ({why})", fix="start it or set MLFLOW_TRACKING_URI")
    _quiet_mlflow_env()
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    params = json.loads((tdir / "params.json").read_text())
    tags = json.loads((tdir / "tags.json").read_text())
    experiment = client.get_experiment_by_name(state.get("experiment", "mtp-harness"))
    exp_id = experiment.experiment_id if experiment else client.create_experiment(state.get("experiment", "mtp-harness"))
    run_id = client.create_run(exp_id, run_name=state.get("run_name")).info.run_id
    client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in {**tags, "harness.synced_from": str(Path(run_dir).resolve())}.items()])
    rows = []
    for line in _lines(tdir / "metrics.jsonl"):
        step, stamp = line.pop("step"), line.pop("time_ms")
        rows += [(k, float(v), stamp, step) for k, v in line.items()]
    _upload_metrics(client, run_id, rows)
    for art in _lines(tdir / "artifacts.jsonl"):
        if Path(art["path"]).exists():
            client.log_artifact(run_id, art["path"], art["artifact_dir"])
    client.set_terminated(run_id, state.get("status", "FINISHED"))
    old = state.get("live_run_id")
    if old and state.get("live_uri") == uri and old != run_id:
        try:
            client.set_tag(old, "harness.superseded_by", run_id)
            client.set_terminated(old, "FAILED")
        except Exception:  # the partial run may live in another store; nothing to mend then
            pass
    tracker._save_state(synced=True, run_id=run_id, synced_uri=uri)
    return run_id


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
