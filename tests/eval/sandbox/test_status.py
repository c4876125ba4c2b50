"""A program's end, read as a verdict: every way a program can die is a status, never an exception.

Before issue 24 a program that killed itself with a real-time signal (`os.kill(os.getpid(),
40)`) made `signal.Signals(40)` raise under `--unsafe-no-sandbox`: the scoring stopped with a
traceback, the rows after it were never scored, and a resume hit the same sample again.
"""

from __future__ import annotations

import json
import signal
from types import SimpleNamespace

import pytest

from harness.eval.benchmarks import scoring
from harness.eval.sandbox import runner
from harness.eval.sandbox.config import SandboxConfig
from harness.eval.sandbox.status import classify

FACTS = dict(timed_out=False, seconds=0.1, oom_kills=0, stderr=b"")
VERDICT = {"status": "failed", "reason": "the program ended during a call", "stage": "call", "ended": True}


def name(number: int) -> str:
    members = {member.value: member.name for member in signal.Signals}  # SIGRTMIN and SIGRTMAX are members
    return members.get(number, f"SIGRTMIN+{number - signal.SIGRTMIN}")


def fake_sandbox(kind: str):
    return SimpleNamespace(config=SandboxConfig(), kind=kind, cpu_limit=20)


@pytest.mark.parametrize("number", [signal.SIGRTMIN, 40, signal.SIGRTMAX, signal.SIGSEGV, signal.SIGUSR1])
@pytest.mark.parametrize("kind", ["none", "bwrap"])
def test_any_signal_number_is_a_verdict(kind, number):
    returncode = -number if kind == "none" else 128 + number  # bwrap's init reports 128+N
    status, reason = classify(VERDICT, {**FACTS, "returncode": returncode}, fake_sandbox(kind))
    assert status == "failed"
    assert reason == (f"killed by {name(number)}" if kind == "none" else f"exit status {returncode}")


def test_signal_names_cover_every_number():
    from harness.eval.sandbox.status import signal_name

    assert signal_name(40) == f"SIGRTMIN+{40 - signal.SIGRTMIN}"
    assert signal_name(signal.SIGKILL) == "SIGKILL"
    assert signal_name(200) == "signal 200"


def test_a_program_that_kills_itself_with_a_realtime_signal_leaves_the_scoring_running(tmp_path, monkeypatch):
    """End to end, unisolated (the kind whose exit status is the signal): every row is scored."""
    monkeypatch.setattr(runner, "available_kinds", lambda: ["none"])
    box = runner.open_sandbox(SandboxConfig(timeout_s=10, cgroups="off", workers=1), allow_unsafe=True)
    killer = "    import os\n    os.kill(os.getpid(), 40)\n"
    right = "    return [s for s in strings if substring in s]\n"
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": "HumanEval/7", "completion": c}) + "\n" for c in (killer, right)))
    out = tmp_path / "rows.jsonl"
    try:
        summary = scoring.score_file(samples, "humaneval", box, out, (1,))
    finally:
        box.close()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", f"killed by {name(40)}"), ("passed", "")]
    assert summary["samples"] == 2 and summary["passed"] == 1
