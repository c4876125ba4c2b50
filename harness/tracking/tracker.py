"""Tracking: every run's params, tags, metrics and artifacts, in its run directory first and
in MLflow when the tracking store answers.

The run directory is the durable copy (DESIGN.md): each record is appended to
`RUN_DIR/track/` before MLflow sees it, so a tracking server that is down, or goes down
mid-run, loses nothing; the run goes on and `harness sync RUN_DIR` uploads it later.
MLflow's conventions hold: `MLFLOW_TRACKING_URI` wins, else MLflow's local default
(`sqlite:///mlflow.db` in the working directory), resolved to an absolute path when the run
starts and kept in `track/state.json`, so a resume from another directory finds the same
store; telemetry is off. The local record is `harness.tracking.record`; every effect on the
store goes through the state machine in `harness.tracking.effects` (written down before it
happens, safe to repeat after a crash) and the calls themselves through
`harness.tracking.gateway`; `harness sync` is `harness.tracking.sync`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from harness import rundir
from harness.errors import one_line
from harness.fs_errors import RunDirError, explain, filesystem_error, is_under, writing
from harness.tracking.config import TrackConfig
from harness.tracking.gateway import run_tracking_uri
from harness.tracking.record import TrackRecord, training_key


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
    (bit-identical losses; new timings) and uploads them then. A key the MLflow run already
    holds (read when the run is opened, and again on resume) is not sent again: the same
    value is skipped, another value is counted as a conflict. On resume (`note_resume`)
    whatever final steps MLflow lacks are uploaded. At the end the MLflow run is compared
    with the run directory: if it disagrees anywhere, a replacement run gets the whole
    record and the old one is superseded (harness.tracking.effects).
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
        self.missing: list[str] = []  # recorded artifacts that are gone
        self._pending: dict[tuple[str, int], tuple[str, float, int, int]] = {}
        self._held: dict[tuple[str, int], list[float]] = {}
        self._start_args: tuple = ()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, params: dict[str, str], tags: dict[str, str], run_name: str) -> None:
        """Record params and tags; open (or reopen, on resume) the MLflow run if possible."""
        self.record.repair()
        tags = {**tags, **self.cfg.tags}
        with writing(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
            rundir.write_json(self.dir / rundir.PARAMS, params)
            rundir.write_json(self.dir / rundir.TAGS, tags)
        self.uri, source = run_tracking_uri(self.record.state())
        self.record.save_state(run_name=run_name, experiment=self.cfg.experiment, status="RUNNING", synced=False,
                               uri=self.uri, uri_source=source, offline_reason=None)
        self.record.record_id()
        self._start_args = (params, tags, run_name)
        if self.enabled:
            self._guard(self._open_mlflow, params, tags, run_name)

    def _open_mlflow(self, params, tags, run_name) -> None:
        from harness.tracking.effects import open_run
        from harness.tracking.gateway import connect, remote_metrics, reopen

        client = connect(self.uri)
        run_id = open_run(client, self.record, self.uri, self.cfg.experiment, run_name, params, tags)
        reopen(client, run_id)
        self._held = remote_metrics(client, run_id, ())
        self.client, self.run_id = client, run_id

    def _guard(self, fn, *args) -> None:
        """Run an MLflow call; on failure go offline for the rest of the run, keep going. The run
        directory's own filesystem refusing a write is no tracking failure: it stops the run."""
        try:
            fn(*args)
        except RunDirError:
            raise
        except Exception as exc:  # the run must survive any tracking failure; it is reported
            local = filesystem_error(exc)
            if local is not None and is_under(local, self.record.run_dir):
                raise explain(local) from None
            self.problem = f"{type(exc).__name__}: {one_line(exc)[:300]}"
            self.client = None
            self.record.save_state(offline_reason=self.problem)
            print(f"warning: MLflow tracking is offline ({self.problem}); the run continues and "
                  f"keeps everything in {self.dir.parent}; upload later with `harness sync {self.dir.parent}`",
                  file=sys.stderr)

    def note_resume(self, step: int) -> None:
        """Training restarts after `step` (0: from scratch): the local training rows of later
        steps are set aside (kept in metrics.replaced.jsonl) as they are about to be
        recomputed, while the scores of later stages stay; the final rows MLflow lacks are
        uploaded now, and later ones it holds are skipped when they come again."""
        self.record.set_aside(lambda row: row["step"] > step, keys=training_key)
        self.final = step
        if self.client is not None:
            self._guard(self._repair, step)

    def _repair(self, step: int) -> None:
        from harness.tracking.effects import reconcile
        from harness.tracking.gateway import remote_metrics

        self.conflicts += reconcile(self.client, self.record, self.uri, self.run_id, upto=step)
        self._held = remote_metrics(self.client, self.run_id, ())

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
            held = self._held.pop((key, step), None)
            if held is None:
                self._pending[(key, step)] = (key, float(value), stamp, step)  # a value logged again replaces it
            elif len(held) != 1 or held[0] != float(value):
                self.conflicts += 1  # not the same bits: the end of the run replaces the MLflow run
        if step % self.cfg.flush_every == 0:
            self.flush()

    def flush(self, upto: int | None = None) -> None:
        """Upload the buffered rows of final steps (or of steps up to `upto`)."""
        if self.client is None or not self._pending:
            return
        from harness.tracking.effects import log

        upto = self.final if upto is None else upto
        ready = [row for row in self._pending.values() if row[3] <= upto]
        for key, _, _, step in ready:
            del self._pending[(key, step)]
        if ready:
            self._guard(log, self.client, self.record, self.uri, self.run_id, ready)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tags known only after training (the collapse check): kept in tags.json with the
        others, so a later `harness sync` or a replacement run carries them too."""
        from harness.tracking.gateway import set_tags

        path = self.dir / rundir.TAGS
        with writing(self.dir):
            rundir.write_json(path, {**rundir.read_json(path, default={}), **tags})
        if self._start_args:
            params, old, run_name = self._start_args
            self._start_args = (params, {**old, **tags}, run_name)
        if self.client is not None:
            self._guard(set_tags, self.client, self.run_id, tags)

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        """Recorded now, uploaded when the run closes (per file, each once: effects.upload)."""
        self.record.add_artifact(path, artifact_dir)

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
        synced = self.client is not None and self.problem is None and not held_back and not self.missing
        self.record.save_state(synced=synced, status=status, step=step, run_id=self.run_id)

    def _close(self, status: str, step: int, upto: int | None) -> None:
        from harness.tracking.effects import close, reconcile, replace, upload

        if reconcile(self.client, self.record, self.uri, self.run_id, upto=upto) or self.conflicts:
            params, tags, run_name = self._start_args
            old = self.run_id
            self.run_id = replace(self.client, self.record, self.uri, old, self.cfg.experiment, run_name, params, tags)
            print(f"note: MLflow run {old} disagreed with {self.dir.parent} (a step computed twice with other bits); "
                  f"run {self.run_id} replaces it with the exact record", file=sys.stderr)
            self.conflicts = 0
        self.missing = upload(self.client, self.record, self.uri, self.run_id)
        if self.missing:
            print(f"warning: {len(self.missing)} recorded artifact(s) are gone: {', '.join(self.missing[:3])}",
                  file=sys.stderr)
        close(self.client, self.record, self.uri, self.run_id, status, step)


def closed(run_dir: Path) -> bool:
    """The run's record is closed FINISHED and held exactly by the store in use now (so the
    stage that closes runs has nothing left to do)."""
    state = TrackRecord(Path(run_dir)).state()
    return (state.get("status") == "FINISHED" and state.get("synced") is True and not state.get("pending")
            and state.get("uri") == run_tracking_uri(state)[0])
