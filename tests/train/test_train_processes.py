"""Training across real processes: kill -9 and resume, preemption signals, two ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.launch.preemption import PREEMPTED_EXIT
from tests.conftest import RANK_VARS
from tests.train.test_train_pipeline import TINY_RUN, losses, only_run

pytestmark = pytest.mark.slow


# A child starts from a clean slate, like a user's shell: no rank variables (an in-process
# run in this test may have set them, a bound MASTER_PORT among them).


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in RANK_VARS}, **extra}


def harness(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env or clean_env())


def wait_for_step(runs: Path, step: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dirs = [p for p in runs.glob("*") if p.is_dir()] if runs.exists() else []
        metrics = dirs[0] / "track" / "metrics.jsonl" if dirs else None
        if metrics and metrics.exists() and any(json.loads(l)["step"] >= step for l in metrics.read_text().splitlines()):
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before step {step}:\n{proc.stdout.read()}")
        time.sleep(0.05)
    pytest.fail(f"no step {step} within {timeout} s")


@pytest.fixture
def long_tiny(write):
    return write("tiny.yaml", TINY_RUN.replace("steps: 8", "steps: 40").replace("checkpoint_every: 3", "checkpoint_every: 5"))


@pytest.fixture
def reference(long_tiny, tmp_path) -> dict[int, float]:
    proc = harness("run", long_tiny, "--runs", tmp_path / "reference")
    assert proc.wait(600) == 0, proc.stdout.read()
    return losses(only_run(tmp_path / "reference"))


def test_kill_9_then_resume_is_bit_identical(long_tiny, tmp_path, reference):
    runs = tmp_path / "killed"
    proc = harness("run", long_tiny, "--runs", runs)
    wait_for_step(runs, 12, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert max(losses(only_run(runs))) < 40  # it really was cut short
    resumed = harness("run", long_tiny, "--runs", runs)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "resumed from step_0000" in output
    assert losses(only_run(runs)) == reference  # every step, bit for bit
    assert (only_run(runs) / "track" / "metrics.replaced.jsonl").exists()  # the cut-off steps are kept aside


def test_sigusr1_checkpoints_and_exits_cleanly(long_tiny, tmp_path, reference):
    runs = tmp_path / "preempted"
    marker = tmp_path / "preempted.marker"  # what a generated sbatch script checks to requeue
    proc = harness("run", long_tiny, "--runs", runs, env=clean_env(MTP_HARNESS_PREEMPT_FILE=str(marker)))
    wait_for_step(runs, 7, proc)
    proc.send_signal(signal.SIGUSR1)  # Slurm's --signal=USR1@... warning before preemption
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == PREEMPTED_EXIT, output
    assert "stopped by SIGUSR1" in output and marker.read_text().strip() == "SIGUSR1"
    run_dir = only_run(runs)
    stopped_at = int((run_dir / "checkpoints" / "latest").read_text().split("_")[1])
    assert stopped_at == max(losses(run_dir)) < 40  # a checkpoint at exactly the last finished step
    resumed = harness("run", long_tiny, "--runs", runs)
    assert resumed.wait(600) == 0
    assert losses(run_dir) == reference


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "track" / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_give_the_losses_of_one(long_tiny, tmp_path):
    common = ["train.steps=6", "train.micro_batch_size=1", "train.checkpoint_every=100"]
    peak = 1e12  # per device: MFU must divide by world size x this
    one = harness("run", long_tiny, "--runs", tmp_path / "one", *common, env=clean_env(MTP_HARNESS_PEAK_FLOPS=str(peak)))
    assert one.wait(600) == 0, one.stdout.read()
    env = clean_env(OMP_NUM_THREADS="1", MTP_HARNESS_PEAK_FLOPS=str(peak))
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "harness", "run", str(long_tiny), "--runs", str(tmp_path / "two"), *common],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert two.returncode == 0, two.stdout + two.stderr
    single, double = losses(only_run(tmp_path / "one")), losses(only_run(tmp_path / "two"))
    assert sorted(double) == list(range(1, 7))
    for step, loss in single.items():
        assert double[step] == pytest.approx(loss, abs=1e-5), step
    tags = json.loads((only_run(tmp_path / "two") / "track" / "tags.json").read_text())
    assert tags["harness.world_size"] == "2"
    for run, world in ((only_run(tmp_path / "one"), 1), (only_run(tmp_path / "two"), 2)):
        per_token = json.loads((run / "plan.json").read_text())["flops_per_token"]["total"]
        timed = [r for r in _rows(run) if "mfu" in r]
        assert timed and all(r["mfu"] == pytest.approx(per_token * r["tokens_per_s"] / (world * peak)) for r in timed)


def test_two_processes_share_the_evaluation(write, tmp_path):
    """Both ranks stay after training: rank 0 exports while rank 1 waits, each generates half
    of HumanEval/MBPP, rank 0 writes rows equal to a one-process `harness eval` of the export."""
    recipe = write("tiny.yaml", TINY_RUN.replace("seq_len: 32", "seq_len: 256").replace(
        "eval: {enabled: false}", "eval: {tasks: [humaneval, mbpp], limit: 5, max_gen_toks: 12, batch_size: 2, "
        "num_threads: 1, canonical_nll: false, sandbox: {workers: 1}}"))
    env = clean_env(OMP_NUM_THREADS="1", MTP_HARNESS_DEVICE="cpu")
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "harness", "run", str(recipe), "--runs", str(tmp_path / "runs"), "train.steps=4"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert two.returncode == 0, two.stdout + two.stderr
    assert "humaneval, mbpp (greedy protocol, shared by 2 ranks)" in two.stdout + two.stderr
    run = only_run(tmp_path / "runs")
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["humaneval/problems"] == summary["mbpp/problems"] == 5
    one = harness("eval", "run", run, "--limit", "5", "--max-gen-toks", "12", "--batch-size", "2", "--threads", "1",
                  "--workers", "1", "--no-analysis", "--out", tmp_path / "one", env=env)
    assert one.wait(600) == 0, one.stdout.read()
    for task in ("humaneval", "mbpp"):
        assert (run / "eval" / f"{task}_greedy.jsonl").read_text() == (tmp_path / "one" / f"{task}_greedy.jsonl").read_text()
