"""The comparison is logged to MLflow as a small tagged run with the results as artifacts;
an unreachable store costs only that entry; `--experiment` finds runs by their tags."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.report.compare import find_runs, run_compare
from tests.report.report_helpers import study_runs


def _run(root):
    runs = root / "runs"
    dirs = sorted(runs.iterdir()) if runs.exists() else study_runs(runs)
    found = find_runs(tuple(str(d) for d in dirs), None, None, root, False)
    return run_compare(found, baseline="stp", out_dir=root / "out", force=False, n_resamples=500)


def test_comparison_is_an_mlflow_run_with_artifacts(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is relative to the working directory
    first = _run(tmp_path)
    second = _run(tmp_path)
    run_id, problem = second.mlflow
    assert problem is None and run_id and run_id != first.mlflow[0]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.tags["harness.kind"] == "comparison" and run.data.tags["study"] == "syn"
    assert run.data.metrics["gain/meta_n2/humaneval_pass_at_1"] == pytest.approx(
        next(r for r in second.rows if r.arm == "meta_n2").gains["humaneval/pass_at_1"]["mean"])
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"comparison.json", "comparison.md", "comparison.csv", "report.html", "plots"} <= artifacts
    # In an experiment of their own (the training experiment's runs table compares runs only), one
    # run per study: the earlier comparison is replaced, not duplicated.
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "syn-exp-comparisons"
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"  # MLflow 3: the runs view
    assert client.get_run(first.mlflow[0]).info.lifecycle_stage == "deleted"
    live = client.search_runs([experiment.experiment_id], filter_string="tags.study = 'syn'")
    assert [r.info.run_id for r in live] == [run_id]
    assert client.get_experiment_by_name("syn-exp") is None  # no compare run among the training runs


def test_unreachable_store_does_not_fail_the_comparison(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = _run(tmp_path)
    assert result.mlflow[0] is None and "unreachable" in result.mlflow[1]
    assert (result.out_dir / "report.html").is_file()


def test_experiment_lookup_finds_run_directories_by_tag(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("syn-exp", artifact_location=str(tmp_path / "art"))
    dirs = study_runs(tmp_path / "runs")
    for d in dirs:
        client.create_run(exp, tags={"harness.run_dir": str(d), "study": "syn"})
    client.create_run(exp, tags={"harness.run_dir": str(tmp_path / "gone"), "study": "syn"})  # not on this machine
    found = find_runs((), "syn-exp", None, tmp_path, False)
    assert sorted({r.arm for r in found.records}) == ["deepseek_n2", "meta_n2", "stp"] and found.name == "syn"
    assert len(found.records) == 9
    assert find_runs((), "syn-exp", "syn", tmp_path, False).name == "syn"
    with pytest.raises(HarnessError, match="no runs whose run directory"):
        find_runs((), "syn-exp", "other-study", tmp_path, False)
    with pytest.raises(HarnessError, match="no MLflow experiment"):
        find_runs((), "missing", None, tmp_path, False)
