"""Mirroring a run directory's record into MLflow, exactly: every (metric, step) once.

MLflow appends metric values and cannot delete one, so exactness comes from comparing: the
MLflow run's metric histories are read back and only the (metric, step) keys it lacks are
uploaded. An MLflow run that holds a key twice, a key the run directory set aside, or a
different value for a key (a replay that was not bit-identical) cannot be mended in place:
a replacement run gets the whole record, and the old one is tagged `harness.superseded_by`
and marked FAILED, so it is never reopened. A value only MLflow still holds (the record's
last line was torn) is put back into the record instead of being dropped from MLflow.

`harness sync RUN_DIR` (`sync_run_dir`) does this against the current tracking store: a
store it has never seen gets its own run (state.json keeps one run id per store, and the
run carries the record's id, so a run whose id was never saved is found, not made twice);
artifacts go up per file, each once; a run whose process died without closing it is marked
FAILED with the step it reached. Every step is an effect of `harness.tracking.effects`, so
an interrupted sync is finished by the next one. The run directory's lock is taken first and
outside the store's errors: a run directory that cannot be written is said to be that, never
the store's refusal.
"""

from __future__ import annotations

import socket
from pathlib import Path

from harness import rundir
from harness.errors import HarnessError, one_line
from harness.fs_errors import RunDirError, explain, filesystem_error, is_under
from harness.tracking.effects import close, open_run, reconcile, replace, upload
from harness.tracking.gateway import STATUSES, connect, run_tracking_uri, store_errors
from harness.tracking.record import TrackRecord


def closing_status(record: TrackRecord) -> tuple[str, int]:
    """(MLflow status, step reached) of a run that is not running now (the caller holds its
    lock): one still RUNNING on record ended without closing itself (a crash, kill -9)."""
    state = record.state()
    steps = [row["step"] for row in record.rows()]
    step = max(steps, default=state.get("step", 0))
    status = state.get("status", "FINISHED")
    return (status if status in STATUSES else "FAILED"), step


def sync_run_dir(run_dir: Path, *, force: bool = False) -> str:
    """Make the current tracking store hold exactly the run directory's record; the MLflow run id."""
    run_dir = Path(run_dir)
    record = TrackRecord(run_dir)
    if not (record.dir / rundir.PARAMS).exists():
        raise HarnessError(f"{run_dir}: no tracking record ({rundir.TRACK}/{rundir.PARAMS})",
                           fix="pass a harness run directory")
    from harness.run.lock import RunLock  # the run floor's lock, loaded only for `harness sync`

    uri, _ = run_tracking_uri(record.state())
    with RunLock(run_dir):  # a run in progress mirrors itself; two writers would not be exact
        try:
            return _sync(record, uri, force)
        except RunDirError:
            raise
        except ConnectionError as exc:
            raise HarnessError(one_line(exc), fix="start it or set MLFLOW_TRACKING_URI") from None
        except store_errors() as exc:
            local = filesystem_error(exc)
            if local is not None and is_under(local, run_dir):  # an artifact we could not read, say
                raise explain(local) from None
            raise HarnessError(f"tracking store {uri} refused the upload ({_reason(exc)})",
                               fix="check that the store is writable and reachable, then sync again") from None


def _reason(exc: BaseException) -> str:
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text[:200]}"


def _sync(record: TrackRecord, uri: str, force: bool) -> str:
    state = record.state()
    client = connect(uri)
    params = rundir.read_json(record.dir / rundir.PARAMS)
    tags = {**rundir.read_json(record.dir / rundir.TAGS), "harness.synced_from": socket.gethostname()}
    if "harness.run_dir" in tags:
        tags["harness.run_dir"] = str(record.run_dir.resolve())  # where it is now, if moved
    experiment, run_name = state.get("experiment", "mtp-harness"), state.get("run_name")
    run_id = open_run(client, record, uri, experiment, run_name, params, tags)
    if reconcile(client, record, uri, run_id):
        run_id = replace(client, record, uri, run_id, experiment, run_name, params, tags)
    record.save_state(uri=uri)
    missing = upload(client, record, uri, run_id, force=force)
    status, step = closing_status(record)
    close(client, record, uri, run_id, status, step)
    if missing:
        record.save_state(synced=False)
        raise HarnessError(f"{len(missing)} artifact(s) of {record.run_dir} are gone: {', '.join(missing[:5])}",
                           fix="restore them and run `harness sync` again (everything else is uploaded)")
    record.save_state(synced=True, status=status, step=step)
    return run_id
