"""`harness ui`: an MLflow server on 127.0.0.1 against the configured store, healthy, with
the study's runs at the printed URL; stopped with everything it started."""

from __future__ import annotations

import json
import os
import socket
import urllib.request

import pytest

from harness.errors import HarnessError
from harness.ranks import free_port
from harness.report.ui import HOST, experiment_id, runs_url, start_server, stop_server, wait_healthy


@pytest.mark.slow
def test_server_starts_answers_and_stops(tmp_path):
    uri = f"sqlite:///{tmp_path / 'ui.db'}"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("ui-exp", artifact_location=str(tmp_path / "art"))
    client.create_run(exp, tags={"study": "s1"})
    port = free_port()
    proc = start_server(uri, port)
    try:
        base = f"http://{HOST}:{port}"
        wait_healthy(base, proc, timeout=240)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=ui-exp") as r:
            assert json.load(r)["experiment"]["experiment_id"] == exp
        assert experiment_id(uri, "ui-exp") == exp
        url = runs_url(base, exp, "s1")
        assert url == f"{base}/#/experiments/{exp}/runs?searchFilter=tags.study%20%3D%20%27s1%27"
        with pytest.raises(HarnessError, match="in use"):
            start_server(uri, port)
    finally:
        stop_server(proc)
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):  # nothing left of the session it ran in (workers)
        os.killpg(proc.pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=5)


def test_urls_without_an_experiment():
    assert runs_url("http://127.0.0.1:5000", None) == "http://127.0.0.1:5000/#/experiments"
    assert runs_url("http://h", "3") == "http://h/#/experiments/3/runs"


def test_a_store_that_cannot_answer_is_reported_not_swallowed(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a path *under* a regular file can never be a database
    assert experiment_id(f"sqlite:///{blocked}/mlflow.db", "x") is None
    assert "cannot look up experiment 'x'" in capsys.readouterr().err


def test_without_a_study_the_link_is_the_latest_runs_experiment(tmp_path):
    """After `harness run`, a bare `harness ui` opens the runs table of the experiment just used."""
    import time

    from mlflow.tracking import MlflowClient

    from harness.report.ui import latest_experiment

    uri = f"sqlite:///{tmp_path / 'latest.db'}"
    assert latest_experiment(uri) is None  # an empty store: no link to give
    client = MlflowClient(tracking_uri=uri)
    for name in ("older", "newer"):
        client.create_run(client.create_experiment(name, artifact_location=str(tmp_path / name)))
        time.sleep(0.05)
    assert latest_experiment(uri) == "newer"
