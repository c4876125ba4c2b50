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
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, one_line
from harness.run_record import TrackRecord

SUPERSEDED_TAG = "harness.superseded_by"
STEP_TAG = "harness.step_reached"
STATUSES = ("FINISHED", "KILLED", "FAILED")


def store_errors() -> tuple[type[BaseException], ...]:
    """What a tracking store raises when it refuses (read-only, locked, unreachable, ...)."""
    from mlflow.exceptions import MlflowException

    errors: list[type[BaseException]] = [MlflowException, OSError, ConnectionError]
    try:
        from sqlalchemy.exc import SQLAlchemyError

        errors.append(SQLAlchemyError)
    except ImportError:  # an http store needs no sqlalchemy
        pass
    return tuple(errors)


def connect(uri: str):
    """An MlflowClient for a store that answers (local stores always do)."""
    from harness.track import quiet_mlflow, reachable

    ok, why = reachable(uri)
    if not ok:
        raise ConnectionError(f"tracking store {uri} is unreachable ({why})")
    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def find_run(client, run_id: str | None) -> str | None:
    """The run to continue: `run_id` or what superseded it; None if the store lacks it."""
    from mlflow.exceptions import MlflowException

    for _ in range(20):  # a chain of replacements, never a cycle in practice
        if run_id is None:
            return None
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        if run.info.lifecycle_stage == "deleted":
            return None
        successor = run.data.tags.get(SUPERSEDED_TAG)
        if not successor:
            return run_id
        run_id = successor
    return run_id


def create_run(client, experiment: str, run_name: str | None, params: dict, tags: dict) -> str:
    from mlflow.entities import Param, RunTag

    found = client.get_experiment_by_name(experiment)
    exp_id = found.experiment_id if found else client.create_experiment(experiment)
    run_id = client.create_run(exp_id, run_name=run_name).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])
    return run_id


def update_params_and_tags(client, run_id: str, params: dict, tags: dict) -> None:
    """Tags are set again (a resumed run may carry new ones); params only where missing,
    because MLflow refuses to change a logged param."""
    from mlflow.entities import Param, RunTag

    have = client.get_run(run_id).data.params
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items() if k not in have],
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])


def remote_metrics(client, run_id: str, names) -> dict[tuple[str, int], list[float]]:
    """(metric, step) -> every value MLflow holds for it."""
    names = set(names) | set(client.get_run(run_id).data.metrics)
    out: dict[tuple[str, int], list[float]] = {}
    for name in sorted(names):
        for metric in client.get_metric_history(run_id, name):
            out.setdefault((name, metric.step), []).append(metric.value)
    return out


@dataclass(frozen=True)
class Comparison:
    missing: list[tuple[str, float, int, int]]  # (name, value, time_ms, step) to upload
    conflicts: int  # keys MLflow holds twice, holds with another value, or holds and we do not


def compare(local: dict[tuple[str, int], tuple[float, int]], remote: dict[tuple[str, int], list[float]],
            upto: int | None = None) -> Comparison:
    """What to upload and how many keys disagree; with `upto`, only steps up to it count."""
    if upto is not None:
        local = {key: value for key, value in local.items() if key[1] <= upto}
        remote = {key: values for key, values in remote.items() if key[1] <= upto}
    missing = [(k, value, stamp, step) for (k, step), (value, stamp) in local.items() if (k, step) not in remote]
    conflicts = sum(1 for key, values in remote.items()
                    if len(values) != 1 or key not in local or not _same(values[0], local[key][0]))
    return Comparison(sorted(missing, key=lambda m: (m[3], m[0])), conflicts)


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN equals NaN here: the same record


def upload_metrics(client, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    """log_batch with explicit steps (the client splits it into MLflow's batch limits)."""
    from mlflow.entities import Metric

    if rows:
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in rows])


def mirror_metrics(client, run_id: str, record: TrackRecord, upto: int | None = None) -> int:
    """Upload what the MLflow run lacks (of steps up to `upto`); returns how many keys
    conflict (0: exact now)."""
    local = record.keyed()
    result = compare(local, remote_metrics(client, run_id, {name for name, _ in local}), upto)
    upload_metrics(client, run_id, result.missing)
    return result.conflicts


def replace_run(client, old: str, record: TrackRecord, experiment: str, run_name: str | None,
                params: dict, tags: dict, uri: str) -> str:
    """A new MLflow run with the whole record; the old one superseded (never reopened)."""
    new = create_run(client, experiment, run_name, params, tags)
    mirror_metrics(client, new, record)
    supersede(client, old, new)
    record.save_state(runs={**record.state().get("runs", {}), uri: new}, run_id=new)
    return new


def supersede(client, old: str, new: str) -> None:
    client.set_tag(old, SUPERSEDED_TAG, new)
    client.set_terminated(old, "FAILED")


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
    from harness.track import run_tracking_uri

    run_dir = Path(run_dir)
    record = TrackRecord(run_dir)
    if not (record.dir / "params.json").exists():
        raise HarnessError(f"{run_dir}: no tracking record (track/params.json)", fix="pass a harness run directory")
    from harness.runlock import RunLock

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
    import json

    state = record.state()
    status, step = closing_status(record)
    client = connect(uri)
    params = json.loads((record.dir / "params.json").read_text())
    tags = {**json.loads((record.dir / "tags.json").read_text()), "harness.synced_from": socket.gethostname()}
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


def upload_artifacts(client, run_id: str, record: TrackRecord, *, everything: bool) -> list[str]:
    """Upload the recorded artifacts (MLflow overwrites by path); returns those not found."""
    missing = []
    for path, artifact_dir in record.artifacts():
        if not path.exists():
            missing.append(str(path))
        elif everything:
            client.log_artifact(run_id, str(path), artifact_dir)  # a directory keeps its name
    return missing
