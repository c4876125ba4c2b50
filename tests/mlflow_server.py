"""A real `mlflow server` on loopback for the tests that track over HTTP, as a cluster does.

One per test session, started only when a test asks for it (the `mlflow_server` fixture in
tests/conftest.py): job execution off and one worker, so it is healthy in ~8 s on a quiet
machine (docs: ENV-NOTES), its artifacts under the session's own folder, stopped (its whole
process group) at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from harness.ranks import free_port
from harness.report.ui import stop_server, wait_healthy


@contextmanager
def serve(root: Path):
    """Yields the server's URI; its sqlite store and artifacts live in `root`."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(uri, proc, timeout=180)  # a busy 2-core machine starts it slowly
        yield uri
    finally:
        stop_server(proc)
