"""The MLflow gateway: the tracking store's address, and every MLflow call the harness makes
(one place builds an MlflowClient, one place knows what a refusing store raises).

MLflow's conventions decide the store: MLFLOW_TRACKING_URI wins, else `./mlflow.db`.
MLflow appends metric values and cannot delete one, so the record is mirrored exactly by
comparing: a run's metric histories are read back and only the (metric, step) keys it lacks
are uploaded (`mirror_metrics`); a run that cannot be mended in place is replaced and the old
one tagged `harness.superseded_by` (`replace_run`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.tracking.record import TrackRecord

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


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


# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, evaluations);
# training runs belong in the model-development view, whose runs table compares them.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def experiment_id(client, name: str) -> str:
    """The experiment's id, created (as a model-development experiment) when it does not exist."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    exp_id = client.create_experiment(name)
    client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
    return exp_id


def create_run(client, experiment: str, run_name: str | None, params: dict, tags: dict) -> str:
    from mlflow.entities import Param, RunTag

    exp_id = experiment_id(client, experiment)
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


def upload_artifacts(client, run_id: str, record: TrackRecord, *, everything: bool) -> list[str]:
    """Upload the recorded artifacts (MLflow overwrites by path); returns those not found."""
    missing = []
    for path, artifact_dir in record.artifacts():
        if not path.exists():
            missing.append(str(path))
        elif everything:
            client.log_artifact(run_id, str(path), artifact_dir)  # a directory keeps its name
    return missing
