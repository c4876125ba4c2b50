"""SIGUSR1 -> checkpoint at an agreed step -> marker file -> exit 75, on one and two ranks."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness.launch.preemption import PREEMPT_FILE_ENV, PREEMPTED_EXIT

LOOP = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from harness.launch.preemption import Preemption
    rank, world, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    preemption = Preemption().install()
    (out / f"ready{rank}").write_text("")
    for step in range(100000):
        time.sleep(0.01)
        if preemption.agreed():
            (out / f"checkpoint{rank}").write_text(str(step))
            preemption.finish(rank)
    sys.exit(3)
""")


def _start(tmp_path, rank, world):
    env = {**os.environ, PREEMPT_FILE_ENV: str(tmp_path / "preempted.42")}
    return subprocess.Popen([sys.executable, "-c", LOOP, str(rank), str(world), str(tmp_path)], env=env)


def _wait_ready(tmp_path, world, procs):
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{r}").exists() for r in range(world)):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)


def test_signal_checkpoints_marks_and_exits_75(tmp_path):
    proc = _start(tmp_path, 0, 1)
    _wait_ready(tmp_path, 1, [proc])
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=30) == PREEMPTED_EXIT
    assert (tmp_path / "checkpoint0").exists()
    assert (tmp_path / "preempted.42").read_text().strip() == "SIGUSR1"


def test_sigterm_is_a_preemption_too(tmp_path):
    proc = _start(tmp_path, 0, 1)
    _wait_ready(tmp_path, 1, [proc])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == PREEMPTED_EXIT
    assert (tmp_path / "preempted.42").read_text().strip() == "SIGTERM"


def test_ranks_agree_on_the_step_when_only_one_is_signalled(tmp_path):
    procs = [_start(tmp_path, rank, 2) for rank in range(2)]
    _wait_ready(tmp_path, 2, procs)
    procs[1].send_signal(signal.SIGUSR1)
    assert [p.wait(timeout=60) for p in procs] == [PREEMPTED_EXIT] * 2
    steps = {(tmp_path / f"checkpoint{r}").read_text() for r in range(2)}
    assert len(steps) == 1
    assert (tmp_path / "preempted.42").exists()  # written by rank 0, which got no signal


# A signal before `harness run` has its pipeline's handler: while the recipe loads, and while
# the process learns its rank (torch's import is near). Sent by the process to itself at that
# call (tests/faults.py), so the moment is the same on any machine.
EARLY = {"SIGTERM while the recipe loads": ("harness.recipe:load_recipe", signal.SIGTERM),
         "SIGUSR1 while the ranks are read": ("harness.ranks:rank_environment", signal.SIGUSR1)}


@pytest.mark.parametrize("case", EARLY)
def test_a_signal_before_the_pipelines_handler_still_exits_75_with_the_marker(case, tmp_path, write):
    from tests.conftest import TINY
    from tests.faults import harness_at

    target, sig = EARLY[case]
    recipe = write("tiny.yaml", TINY)
    marker = tmp_path / "preempted.marker"
    done = harness_at(target, 1, "run", recipe, "--runs", tmp_path / "runs", when="before", sig=sig,
                      env={PREEMPT_FILE_ENV: str(marker)}, timeout=120)
    assert done.returncode == PREEMPTED_EXIT, done.stdout + done.stderr
    assert marker.read_text().strip() == sig.name and "Traceback" not in done.stderr
