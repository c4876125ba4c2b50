"""The MLflow gateway: the tracking store's address, and every MLflow call the harness makes
(one place builds an MlflowClient, one place knows what a refusing store raises).

MLflow's conventions decide the store: MLFLOW_TRACKING_URI wins, else `./mlflow.db`.
MLflow appends metric values and cannot delete one, so the record is mirrored exactly by
comparing: a run's metric histories are read back (`remote_history`) and only the (metric,
step) keys it lacks are uploaded (`compare`, `upload_metrics`); a run that cannot be mended
in place is replaced and the old one tagged `harness.superseded_by` (`supersede`). When each
call may happen, and what is written down before it, is `harness.tracking.effects`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
RECORD_TAG = "harness.record_id"  # the run directory's id (track/state.json), set as the run is created
REPLACES_TAG = "harness.replaces"  # on a replacement: the run it replaces
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


def experiment_id(client, name: str, *, create: bool = True) -> str | None:
    """The experiment's id; made (as a model-development experiment) if missing and `create`.
    Two processes may make it at once: the one that loses finds the other's."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None or not create:
        return found.experiment_id if found else None
    try:
        exp_id = client.create_experiment(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id
    client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
    return exp_id


def prepare_store(uri: str, experiments) -> None:
    """Open the store once (a new sqlite store builds its schema on first use) and make the
    experiments, before several processes use it: concurrent first uses of one sqlite file
    race to build the same tables and one of them fails."""
    client = connect(uri)
    client.search_experiments(max_results=1)
    for name in sorted(set(experiments)):
        experiment_id(client, name)


def create_run(client, experiment: str, run_name: str | None, params: dict, tags: dict) -> str:
    """A new run. Its tags are set in the same call that creates it, so a run that exists
    carries the record's id (RECORD_TAG) even if the process dies the next instant."""
    from mlflow.entities import Param

    run_id = client.create_run(experiment_id(client, experiment), run_name=run_name,
                               tags={k: str(v) for k, v in tags.items()}).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    return run_id


def tagged_runs(client, experiment: str, record_id: str) -> list:
    """The experiment's live (not deleted) runs that carry this record's id, oldest first."""
    exp_id = experiment_id(client, experiment, create=False)
    if exp_id is None:
        return []
    runs = client.search_runs([exp_id], filter_string=f"tags.`{RECORD_TAG}` = '{record_id}'", max_results=1000)
    return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))


def update_params_and_tags(client, run_id: str, params: dict, tags: dict) -> None:
    """Tags are set again (a resumed run may carry new ones); params only where missing,
    because MLflow refuses to change a logged param."""
    from mlflow.entities import Param, RunTag

    have = client.get_run(run_id).data.params
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items() if k not in have],
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])


def remote_history(client, run_id: str, names) -> dict[tuple[str, int], list[tuple[float, int]]]:
    """(metric, step) -> every (value, timestamp in ms) MLflow holds for it."""
    names = set(names) | set(client.get_run(run_id).data.metrics)
    out: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for name in sorted(names):
        for metric in client.get_metric_history(run_id, name):
            out.setdefault((name, metric.step), []).append((metric.value, metric.timestamp))
    return out


def remote_metrics(client, run_id: str, names) -> dict[tuple[str, int], list[float]]:
    """(metric, step) -> every value MLflow holds for it."""
    return {key: [value for value, _ in held] for key, held in remote_history(client, run_id, names).items()}


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


def supersede(client, old: str, new: str) -> None:
    client.set_tag(old, SUPERSEDED_TAG, new)
    client.set_terminated(old, "FAILED")


def set_tags(client, run_id: str, tags: dict) -> None:
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def reopen(client, run_id: str) -> None:
    client.update_run(run_id, status="RUNNING")


def terminate(client, run_id: str, status: str, step: int) -> None:
    """The run's final status; one that did not finish says which step it reached."""
    if status != "FINISHED":
        client.set_tag(run_id, STEP_TAG, str(step))
    client.set_terminated(run_id, status)


def upload_file(client, run_id: str, path: Path, artifact_dir: str | None) -> None:
    """One file into the run's artifacts (MLflow overwrites by path, so again is harmless)."""
    client.log_artifact(run_id, str(path), artifact_dir)
