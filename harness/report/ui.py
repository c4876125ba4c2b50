"""`harness ui`: the MLflow UI on 127.0.0.1 against the configured tracking store.

For a local store (sqlite, MLflow's default) it starts `mlflow server` bound to loopback
only, with job execution off and one worker (healthy in seconds instead of ~40 s with a
dozen processes, docs/MEASURED.md), and prints where a study's runs are: the UI's root opens a
GenAI view, the runs table is `#/experiments/<id>/runs`, filtered by the study tag. For a
remote store (an http(s) MLFLOW_TRACKING_URI) there is nothing to start: its URL is printed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from harness.errors import HarnessError

HOST = "127.0.0.1"


def port_is_free(port: int) -> bool:
    """Whether a server could listen there now. SO_REUSEADDR as servers set it: connections
    of a server that just stopped (TIME_WAIT) do not block its successor."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def start_server(uri: str, port: int, log=subprocess.DEVNULL) -> subprocess.Popen:
    """`mlflow server` on loopback in its own session (so stopping it stops its workers)."""
    if not port_is_free(port):
        raise HarnessError(f"port {port} on {HOST} is in use", fix="pass another --port")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", HOST,
            "--port", str(port), "--workers", "1"]
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(base_url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"mlflow server exited with status {proc.returncode} before answering",
                               fix="run `python -m mlflow server` by hand to see why")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise HarnessError(f"mlflow server did not answer on {base_url}/health within {timeout:.0f} s",
                       fix="try again (a busy machine starts it slowly) or start it by hand")


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group we started (the server and its workers), SIGKILL what is
    left after `timeout`, and return once none of it remains."""
    deadline = time.monotonic() + timeout
    sig = signal.SIGTERM
    while True:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        proc.poll()  # reap the leader, or it stays a zombie in the group
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        time.sleep(0.2)
    proc.wait()


def latest_experiment(uri: str) -> str | None:
    """The experiment of the run started last in the store (what someone who just ran
    `harness run` wants to see), or None when the store has no run or cannot say."""
    from harness.tracking.gateway import connect, store_errors

    try:
        client = connect(uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, order_by=["attributes.start_time DESC"], max_results=1) if experiments else []
        return client.get_experiment(runs[0].info.experiment_id).name if runs else None
    except (ConnectionError, *store_errors()):
        return None


def experiment_id(uri: str, name: str) -> str | None:
    """The experiment's id, or None (the UI still starts, without a direct link) when the
    store cannot say; the reason is printed, not swallowed."""
    from harness.tracking.gateway import connect, store_errors

    try:
        found = connect(uri).get_experiment_by_name(name)
    except (ConnectionError, *store_errors()) as exc:
        print(f"warning: cannot look up experiment {name!r} in {uri} ({type(exc).__name__}: {exc}); "
              "the UI starts without a direct link", file=sys.stderr)
        return None
    return found.experiment_id if found else None


def runs_url(base_url: str, exp_id: str | None, study: str | None = None) -> str:
    """The runs table of an experiment, filtered to a study's runs (and its comparison)."""
    if exp_id is None:
        return f"{base_url}/#/experiments"
    url = f"{base_url}/#/experiments/{exp_id}/runs"
    if study:
        url += "?" + urllib.parse.urlencode({"searchFilter": f"tags.study = '{study}'"}, quote_via=urllib.parse.quote)
    return url


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(study_path: str | None, port: int, experiment: str | None, console) -> None:
    """Start the UI (or point at the remote one), print the study's runs URL, run until Ctrl-C."""
    from harness.tracking.gateway import tracking_uri

    uri = tracking_uri()
    study = None
    if study_path:
        from harness.study.design import load_study

        loaded = load_study(study_path)
        study = loaded.config.name
        experiment = experiment or next(iter(loaded.recipes.values())).track.experiment
    experiment = experiment or latest_experiment(uri)
    if uri.startswith(("http://", "https://")):
        exp_id = experiment_id(uri, experiment) if experiment else None
        console.print(f"tracking store {uri} is a server already: {runs_url(uri.rstrip('/'), exp_id, study)}")
        return
    base = f"http://{HOST}:{port}"
    proc = start_server(uri, port)
    # The server runs in its own session (so its workers stop with it); a SIGTERM to us
    # must still reach it, so turn it into the same exit as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        wait_healthy(base, proc)
        exp_id = experiment_id(uri, experiment) if experiment else None
        if experiment and exp_id:  # the runs table first: the page a reader came for
            console.print(f"open {runs_url(base, exp_id, study)}  ({'study ' + study + ', ' if study else ''}"
                          f"experiment {experiment})")
        elif experiment:
            console.print(f"no experiment {experiment!r} in this store yet; experiments: {base}/#/experiments")
        else:
            console.print(f"no runs in this store yet; experiments: {base}/#/experiments")
        console.print(f"MLflow UI for {uri} at {base} (Ctrl-C stops it)")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(proc)
