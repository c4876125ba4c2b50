"""A comparison's record in MLflow: one small run holding the results directory as artifacts
and the gains as metrics, tagged with the study, beside the arms' runs.

Follows the tracking gateway's conventions (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db; no
telemetry) and, like training, never fails because of the store: the results directory is
the durable copy, and an unreachable store only costs this index entry.
"""

from __future__ import annotations

from pathlib import Path


def log_comparison(out_dir: Path, study: str, experiment: str, rows) -> tuple[str | None, str | None]:
    """Returns (MLflow run id, None), or (None, why it was not logged)."""
    from harness.tracking.gateway import connect, tracking_uri

    uri = tracking_uri()
    try:
        return _log(connect(uri), out_dir, study, experiment, rows), None
    except ConnectionError as exc:
        return None, str(exc)
    except Exception as exc:  # the comparison is written already; the index entry is optional
        return None, f"{type(exc).__name__}: {exc}"


def comparisons_experiment(experiment: str) -> str:
    """Comparisons live in an experiment of their own beside the training runs' (so the runs
    table compares runs, not runs and comparisons)."""
    return f"{experiment}-comparisons"


def _log(client, out_dir: Path, study: str, experiment: str, rows) -> str:
    """One run per study in the comparisons experiment: an earlier comparison of the same
    study is deleted once the new one holds everything (replaced, not duplicated)."""
    from mlflow.entities import Metric, RunTag

    from harness.tracking.gateway import experiment_id

    exp_id = experiment_id(client, comparisons_experiment(experiment))
    older = client.search_runs([exp_id], filter_string=f"tags.`harness.kind` = 'comparison' and tags.study = '{study}'")
    run_id = client.create_run(exp_id, run_name=f"compare-{study}").info.run_id
    tags = {"harness.kind": "comparison", "study": study, "harness.results_dir": str(out_dir.resolve()),
            "harness.runs_experiment": experiment}
    metrics = []
    for row in rows:
        for metric, gain in row.gains.items():
            name = f"gain/{row.arm}/{metric.replace('/', '_')}"
            metrics += [Metric(f"{name}{part}", gain[key], 0, 0) for part, key in (("", "mean"), ("/low", "low"),
                                                                                   ("/high", "high"))
                        if gain.get(key) is not None]
    client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
    client.log_artifacts(run_id, str(out_dir))
    client.set_terminated(run_id, "FINISHED")
    for run in older:
        client.delete_run(run.info.run_id)
    return run_id
