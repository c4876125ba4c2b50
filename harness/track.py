"""Tracking: every run's params, tags, metrics and artifacts, in its run directory first and
in MLflow when the tracking store answers.

The run directory is the durable copy (DESIGN.md): each record is appended to
`RUN_DIR/track/` before MLflow sees it, so a tracking server that is down, or goes down
mid-run, loses nothing; the run goes on and `harness sync RUN_DIR` uploads it later.
MLflow's conventions hold: `MLFLOW_TRACKING_URI` wins, else MLflow's local default
(`sqlite:///mlflow.db` in the working directory), resolved to an absolute path when the run
starts and kept in `track/state.json`, so a resume from another directory finds the same
store; telemetry is off. The local record is `harness.run_record`; the exact mirroring
into MLflow (and `harness sync`) is `harness.sync`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harness.atomic import atomic_write_text
from harness.errors import one_line
from harness.run_record import TrackRecord

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


class TrackConfig(BaseModel):
    """The `track:` section. The store's address is not part of a recipe: it belongs to the
    machine (MLFLOW_TRACKING_URI), and a recipe must mean the same run everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    experiment: str = Field(default="mtp-harness", description="MLflow experiment name")
    tags: dict[str, str] = Field(default={}, description="extra tags on the MLflow run")
    flush_every: int = Field(default=20, ge=1, description="steps between metric uploads")


def _absolute(uri: str) -> str:
    """A sqlite URI or plain path relative to the working directory, made absolute: MLflow
    reads `sqlite:///mlflow.db` from wherever the process happens to run."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if "://" not in uri and not uri.startswith("/") and uri:
        return str(Path(uri).resolve())
    return uri


def tracking_uri() -> str:
    """MLflow's rule (MLFLOW_TRACKING_URI, else ./mlflow.db), as an absolute address."""
    return _absolute(os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)


def run_tracking_uri(state: dict) -> tuple[str, str]:
    """(store, where it came from) for a run: MLFLOW_TRACKING_URI wins; without it a run keeps
    the default store it started with (resolved then), whatever the working directory now."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return tracking_uri(), "MLFLOW_TRACKING_URI"
    if state.get("uri_source") == "default" and state.get("uri"):
        return state["uri"], "default"
    return tracking_uri(), "default"


def quiet_mlflow() -> None:
    """Before importing mlflow: no telemetry, and an unreachable server fails in seconds
    instead of MLflow's default ~4 minutes of retries per call. MLflow, alembic and
    sqlalchemy log a refused write as pages of traceback before raising; the harness
    reports the exception itself in one line, so their logs stay quiet."""
    import logging

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow  # noqa: F401  (it configures its loggers on import; ours comes after)

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


_quiet_mlflow_env = quiet_mlflow  # the name the report modules use


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
    """Writes every record to RUN_DIR/track/ first, and mirrors it to MLflow while the store answers.

    During training only *final* steps go to MLflow: those at or before the newest
    checkpoint (`note_checkpoint`), which no crash can make the run compute again. Later
    rows wait in the buffer; a crash drops them from it, and the resumed run recomputes them
    (bit-identical losses; new timings) and uploads them then. On resume
    (`note_resume`) whatever final steps MLflow lacks are uploaded, and a step MLflow holds
    that is computed again (a fallback to an older checkpoint) is skipped. At the end the
    MLflow run is compared with the run directory: if it disagrees anywhere, a replacement
    run gets the whole record and the old one is superseded (harness.sync).
    """

    def __init__(self, run_dir: Path, cfg: TrackConfig, *, enabled: bool = True):
        self.record = TrackRecord(Path(run_dir))
        self.dir = self.record.dir
        self.cfg = cfg
        self.enabled = enabled and cfg.enabled
        self.client = None
        self.run_id: str | None = None
        self.uri: str | None = None
        self.problem: str | None = None
        self.conflicts = 0
        self.final = 0  # the newest step no crash can recompute (the newest checkpoint's)
        self._pending: list[tuple[str, float, int, int]] = []
        self._replayed: dict[tuple[str, int], list[float]] = {}
        self._start_args: tuple = ()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, params: dict[str, str], tags: dict[str, str], run_name: str) -> None:
        """Record params and tags; open (or reopen, on resume) the MLflow run if possible."""
        self.record.repair()
        tags = {**tags, **self.cfg.tags}
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "params.json", json.dumps(params, indent=1, sort_keys=True))
        atomic_write_text(self.dir / "tags.json", json.dumps(tags, indent=1, sort_keys=True))
        state = self.record.state()
        self.uri, source = run_tracking_uri(state)
        self.record.save_state(run_name=run_name, experiment=self.cfg.experiment, status="RUNNING", synced=False,
                               uri=self.uri, uri_source=source, runs=state.get("runs", {}))
        self._start_args = (params, tags, run_name)
        if self.enabled:
            self._guard(self._open_mlflow, params, tags, run_name)

    def _open_mlflow(self, params, tags, run_name) -> None:
        from harness.sync import connect, create_run, find_run, update_params_and_tags

        client = connect(self.uri)
        runs = self.record.state().get("runs", {})
        run_id = find_run(client, runs.get(self.uri))
        if run_id is None:
            run_id = create_run(client, self.cfg.experiment, run_name, params, tags)
        else:
            update_params_and_tags(client, run_id, params, tags)
            client.update_run(run_id, status="RUNNING")
        self.record.save_state(runs={**runs, self.uri: run_id}, run_id=run_id)
        self.client, self.run_id = client, run_id

    def _guard(self, fn, *args) -> None:
        """Run an MLflow call; on failure go offline for the rest of the run, keep going."""
        try:
            fn(*args)
        except Exception as exc:  # the run must survive any tracking failure; it is reported
            self.problem = f"{type(exc).__name__}: {one_line(exc)[:300]}"
            self.client = None
            self.record.save_state(offline_reason=self.problem)
            print(f"warning: MLflow tracking is offline ({self.problem}); the run continues and "
                  f"keeps everything in {self.dir.parent}; upload later with `harness sync {self.dir.parent}`",
                  file=sys.stderr)

    def note_resume(self, step: int) -> None:
        """Training restarts after `step` (0: from scratch): the local rows of later steps are
        set aside (kept in metrics.replaced.jsonl) as they are about to be recomputed; the
        final rows MLflow lacks are uploaded now, and later ones it holds are skipped when
        they come again."""
        self.record.set_aside(lambda row: row["step"] > step)
        self.final = step
        if self.client is not None:
            self._guard(self._repair, step)

    def _repair(self, step: int) -> None:
        from harness.sync import mirror_metrics, remote_metrics

        self.conflicts = mirror_metrics(self.client, self.run_id, self.record, upto=step)
        remote = remote_metrics(self.client, self.run_id, ())
        self._replayed = {key: values for key, values in remote.items() if key[1] > step}

    def note_checkpoint(self, step: int) -> None:
        """Steps up to `step` can no longer be recomputed: they may go to MLflow."""
        self.final = max(self.final, step)
        self.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        self.record.append(step, metrics, stamp)
        if self.client is None:
            return
        for key, value in metrics.items():
            held = self._replayed.pop((key, step), None)
            if held is None:
                self._pending.append((key, float(value), stamp, step))
            elif len(held) != 1 or held[0] != float(value):
                self.conflicts += 1  # not the same bits: the end of the run replaces the MLflow run
        if step % self.cfg.flush_every == 0:
            self.flush()

    def flush(self, upto: int | None = None) -> None:
        """Upload the buffered rows of final steps (or of steps up to `upto`)."""
        if self.client is None or not self._pending:
            return
        from harness.sync import upload_metrics

        upto = self.final if upto is None else upto
        ready = [row for row in self._pending if row[3] <= upto]
        self._pending = [row for row in self._pending if row[3] > upto]
        if ready:
            self._guard(upload_metrics, self.client, self.run_id, ready)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tags known only after training (the collapse check): kept in tags.json with the
        others, so a later `harness sync` or a replacement run carries them too."""
        path = self.dir / "tags.json"
        merged = {**(json.loads(path.read_text()) if path.is_file() else {}), **tags}
        atomic_write_text(path, json.dumps(merged, indent=1, sort_keys=True))
        if self._start_args:
            params, old, run_name = self._start_args
            self._start_args = (params, {**old, **tags}, run_name)
        if self.client is not None:
            for key, value in tags.items():
                self._guard(self.client.set_tag, self.run_id, key, value)

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        self.record.add_artifact(path, artifact_dir)
        if self.client is not None:
            self._guard(self.client.log_artifact, self.run_id, str(path), artifact_dir)

    def finish(self, status: str = "FINISHED") -> None:
        """Close the run: FINISHED, or KILLED/FAILED with the step reached. `synced` is true
        only if MLflow now holds exactly the run directory's record. A FAILED run keeps the
        rows after its newest checkpoint out of MLflow: a resume will compute them again."""
        upto = self.final if status == "FAILED" else None
        self.flush(upto if upto is not None else 2**62)
        rows = self.record.rows()
        step = max((row["step"] for row in rows), default=0)
        if self.client is not None:
            self._guard(self._close, status, step, upto)
        held_back = upto is not None and step > upto
        synced = self.client is not None and self.problem is None and not held_back
        self.record.save_state(synced=synced, status=status, step=step, run_id=self.run_id)

    def _close(self, status: str, step: int, upto: int | None) -> None:
        from harness.sync import STEP_TAG, mirror_metrics, replace_run

        if mirror_metrics(self.client, self.run_id, self.record, upto=upto) or self.conflicts:
            params, tags, run_name = self._start_args
            old = self.run_id
            self.run_id = replace_run(self.client, old, self.record, self.cfg.experiment, run_name, params, tags, self.uri)
            print(f"note: MLflow run {old} disagreed with {self.dir.parent} (a step computed twice with other bits); "
                  f"run {self.run_id} replaces it with the exact record", file=sys.stderr)
            self.conflicts = 0
        if status != "FINISHED":
            self.client.set_tag(self.run_id, STEP_TAG, str(step))
        self.client.set_terminated(self.run_id, status)


def sync_run_dir(run_dir: Path, *, force: bool = False) -> str:
    """`harness sync`: see harness.sync (kept here for callers of the old name)."""
    from harness.sync import sync_run_dir as sync

    return sync(run_dir, force=force)
