"""Mirroring a run directory's record into MLflow, exactly: every (metric, step) once.

MLflow appends metric values and cannot delete one, so exactness comes from comparing: the
MLflow run's metric histories are read back and only the (metric, step) keys it lacks are
uploaded. An MLflow run that holds a key twice, a key the run directory no longer has, or a
different value for a key (a replay that was not bit-identical) cannot be mended in place:
a replacement run gets the whole record, and the old one is tagged
`harness.superseded_by` and marked FAILED, so it is never reopened.

`harness sync RUN_DIR` (`sync_run_dir`) does this against the current tracking store: a
store it has never seen gets its own run (state.json keeps one run id per store); a run
whose process died without closing it is marked FAILED with the step it reached.
"""

from __future__ import annotations

import socket
from pathlib import Path

from harness import rundir
from harness.errors import HarnessError, one_line
from harness.tracking.gateway import (
    STATUSES,
    STEP_TAG,
    connect,
    create_run,
    find_run,
    mirror_metrics,
    replace_run,
    run_tracking_uri,
    store_errors,
    update_params_and_tags,
    upload_artifacts,
)
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
    try:
        with RunLock(run_dir):  # a run in progress mirrors itself; two writers would not be exact
            return _sync(record, uri, force)
    except ConnectionError as exc:
        raise HarnessError(one_line(exc), fix="start it or set MLFLOW_TRACKING_URI") from None
    except store_errors() as exc:
        raise HarnessError(f"tracking store {uri} refused the upload ({_reason(exc)})",
                           fix="check that the store is writable and reachable, then sync again") from None


def _reason(exc: BaseException) -> str:
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text[:200]}"


def _sync(record: TrackRecord, uri: str, force: bool) -> str:
    state = record.state()
    status, step = closing_status(record)
    client = connect(uri)
    params = rundir.read_json(record.dir / rundir.PARAMS)
    tags = {**rundir.read_json(record.dir / rundir.TAGS), "harness.synced_from": socket.gethostname()}
    if "harness.run_dir" in tags:
        tags["harness.run_dir"] = str(record.run_dir.resolve())  # where it is now, if moved
    experiment = state.get("experiment", "mtp-harness")
    run_id = find_run(client, state.get("runs", {}).get(uri))
    fresh = run_id is None
    if fresh:
        run_id = create_run(client, experiment, state.get("run_name"), params, tags)
    else:
        update_params_and_tags(client, run_id, params, tags)
    if mirror_metrics(client, run_id, record):
        run_id, fresh = replace_run(client, run_id, record, experiment, state.get("run_name"), params, tags, uri), True
    record.save_state(runs={**state.get("runs", {}), uri: run_id}, run_id=run_id, uri=uri)
    missing = upload_artifacts(client, run_id, record, everything=fresh or force or not state.get("synced"))
    if status != "FINISHED":
        client.set_tag(run_id, STEP_TAG, str(step))
    client.set_terminated(run_id, status)
    if missing:
        record.save_state(synced=False)
        raise HarnessError(f"{len(missing)} artifact(s) of {record.run_dir} are gone: {', '.join(missing[:5])}",
                           fix="restore them and run `harness sync` again (everything else is uploaded)")
    record.save_state(synced=True, status=status, step=step)
    return run_id
