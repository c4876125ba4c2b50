"""`harness study --workers 2` under faults: kill -9 of the study leaves no worker behind (they
stop their runs as a preemption would and leave) and a rerun proceeds at once; a fresh sqlite
store is made once by the parent, so no worker loses the race to build its tables and every
run reaches MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RANK_VARS
from tests.study.test_study_run import TINY_ARM

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

# Two runs of the same tiny model (the baseline and its negative control): the least a study is.
TWO_RUNS = """\
study_version: 1
name: tiny
baseline: stp
matching: {rule: flops, tolerance: 0.5}
arms:
  stp: {recipe: arm.yaml}
  twin: {recipe: arm.yaml, control_of: stp, seed_offset: 100}
"""


@pytest.fixture
def study(write):
    def _study(steps: int = 4, checkpoint_every: int = 4) -> Path:
        write("arm.yaml", TINY_ARM.replace("steps: 4,", f"steps: {steps},")
              .replace("checkpoint_every: 4,", f"checkpoint_every: {checkpoint_every},"))
        return write("study.yaml", TWO_RUNS)

    return _study


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _training(runs: Path) -> bool:
    for metrics in runs.glob("*/track/metrics.jsonl"):
        if any(json.loads(line)["step"] >= 2 for line in metrics.read_text().splitlines() if line.endswith("}")):
            return True
    return False


def test_kill_9_of_a_study_stops_its_workers_and_a_rerun_proceeds(study, tmp_path, cli):
    path = study(steps=60, checkpoint_every=5)
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARS}
    parent = subprocess.Popen([sys.executable, "-m", "harness", "study", path, "--runs", runs, "--workers", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while not _training(runs):
            assert parent.poll() is None and time.monotonic() < deadline, "the study never started training"
            time.sleep(0.1)
        workers = [pid for pid in _children(parent.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert workers
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "a worker outlived its study"
    finally:
        parent.kill()
        for pid in workers:  # only the test's own processes, by id
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    again = cli("study", path, "--runs", runs)  # at once: no lock left held
    assert again.exit_code == 0, again.output + again.stderr
    assert "in use by another harness process" not in again.stderr
    states = [json.loads(p.read_text()) for p in runs.glob("*/track/state.json")]
    assert len(states) == 2 and all(s["status"] == "FINISHED" and s["synced"] for s in states)


def test_workers_on_a_fresh_sqlite_store_all_reach_it(study, tmp_path, cli, monkeypatch):
    from mlflow.tracking import MlflowClient

    path = study(steps=3)
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"  # no schema yet: the parent makes it once
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = cli("study", path, "--runs", tmp_path / "runs", "--workers", "2")
    assert result.exit_code == 0, result.output + result.stderr
    assert "MLflow tracking is offline" not in result.stderr + result.output
    runs = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("tiny-study").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
