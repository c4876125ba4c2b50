"""Correct programs beside hostile ones: a neighbour must never turn a right answer into a failure.

Before per-program uids, cgroups and the seccomp filter, every sandbox ran as uid 65534 and
shared RLIMIT_NPROC, so a fork bomb made the threads of correct programs beside it fail
("can't start new thread"); and CPU burners that called setsid() got one scheduler share
each, so a correct but slower program beside 50 of them timed out. Both were reproduced on
the old code (issue 12). Here each correct program must pass every time.

Neighbours may also be other harness processes: before issue 24 every harness process ran its
first program as `uid_base`, so a thread hog scored in one made a correct program in a
second, concurrent scoring fail ("can't start new thread"); `harness study --workers 2` runs
two evaluations at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness.eval.sandbox.runner import Job
from tests.eval.conftest import sandbox_for

ROOT = Path(__file__).resolve().parents[3]

THREADS = Job(  # a correct program that needs threads, started once the neighbour is at full strength
    program="import threading, time\ntime.sleep(1.5)\ndef f(x):\n    out = []\n"
    "    threads = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
    "    for t in threads:\n        t.start()\n    for t in threads:\n        t.join()\n    return x + len(out)\n",
    tests="assert f(1) == 9\n",
)
FORK_BOMB = Job(
    program="import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n",
    tests="assert f() == 1\n",
)
# Fifty children that leave the session (where setsid is allowed) and spin; where processes
# are denied, the program spins itself.
BURNERS = Job(
    program="import os\nfor _ in range(50):\n    try:\n        if os.fork() == 0:\n            try:\n"
    "                os.setsid()\n            except OSError:\n                pass\n            while True:\n"
    "                pass\n    except OSError:\n        break\nwhile True:\n    pass\n",
    tests="assert f() == 1\n",
)
SLOW = Job(  # about a second of CPU alone; the timeout leaves it eight
    program="def total(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n",
    tests="assert total(12_000_000) == 12_000_000 * 11_999_999 // 2\n",
)
MEMORY_HOG = Job(
    program="blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n    blocks[-1][::4096] = b'x' * len(blocks[-1][::4096])\n",
    tests="assert f() == 1\n",
)


def test_fork_bomb_beside_programs_with_threads(isolated):
    box = sandbox_for(isolated_name(isolated), workers=4, timeout_s=6)
    try:
        outcomes = list(box.run_many([FORK_BOMB, THREADS, THREADS, THREADS]))
    finally:
        box.close()
    assert outcomes[0].status in ("failed", "timeout")
    assert [o.status for o in outcomes[1:]] == ["passed"] * 3, [o.reason for o in outcomes[1:]]


def test_setsid_cpu_burners_beside_a_slower_correct_program(isolated):
    box = sandbox_for(isolated_name(isolated), workers=2, timeout_s=8)
    try:
        outcomes = list(box.run_many([BURNERS, SLOW]))
    finally:
        box.close()
    assert outcomes[1].status == "passed", outcomes[1].reason


def test_memory_hog_beside_a_correct_program(isolated):
    box = sandbox_for(isolated_name(isolated), workers=2, timeout_s=8, memory_mb=256)
    try:
        outcomes = list(box.run_many([MEMORY_HOG, THREADS]))
    finally:
        box.close()
    assert outcomes[0].status == "failed" and ("MemoryError" in outcomes[0].reason or "memory" in outcomes[0].reason)
    assert outcomes[1].status == "passed", outcomes[1].reason


def isolated_name(box) -> str:
    """The CONFIGURATIONS key a session sandbox was made from."""
    if box.kind == "unshare":
        return "unshare"
    return "bwrap" if box.config.cgroups != "off" else "bwrap-no-cgroup"


# HumanEval/0 (has_close_elements) twice: a body that takes every thread it can and holds them,
# and a right one that needs four threads.
HOG = ("    import threading, time\n    hold = threading.Event()\n    while True:\n        try:\n"
       "            threading.Thread(target=hold.wait, daemon=True).start()\n        except RuntimeError:\n"
       "            break\n    time.sleep(120)\n")  # fmt: skip
WITH_THREADS = ("    from concurrent.futures import ThreadPoolExecutor\n    def close(i):\n"
                "        return any(abs(numbers[i] - numbers[j]) < threshold for j in range(len(numbers)) if j != i)\n"
                "    with ThreadPoolExecutor(4) as pool:\n        return any(pool.map(close, range(len(numbers))))\n")  # fmt: skip


def _score(samples: Path, completions: list[str], timeout_s: int) -> subprocess.Popen:
    """`harness eval score` in a process of its own, as a second study worker would run it."""
    samples.write_text("".join(json.dumps({"task_id": "HumanEval/0", "completion": c}) + "\n" for c in completions))
    argv = [sys.executable, "-m", "harness", "eval", "score", str(samples), "--task", "humaneval", "--k", "1",
            "--workers", "1", "--timeout", str(timeout_s)]  # fmt: skip
    return subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=samples.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _sandboxed_thread_counts() -> list[int]:
    """Threads of each live sandboxed program on the host (their argv carries a sandbox tag)."""
    counts = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"mtp-harness-sandbox-" in (entry / "cmdline").read_bytes():
                status = (entry / "status").read_text()
                counts.append(int(status.split("Threads:")[1].split()[0]))
        except (OSError, IndexError):
            pass
    return counts


def test_a_thread_hog_in_one_scoring_process_beside_a_correct_program_in_another(tmp_path):
    hog = _score(tmp_path / "hog.jsonl", [HOG], timeout_s=60)
    try:
        deadline = time.monotonic() + 90
        while max(_sandboxed_thread_counts(), default=0) < 40:
            assert hog.poll() is None and time.monotonic() < deadline, "the hog never held its threads"
            time.sleep(0.1)
        right = _score(tmp_path / "right.jsonl", [WITH_THREADS] * 3, timeout_s=30)
        output = right.communicate(timeout=240)[0].decode(errors="replace")
        assert right.returncode == 0, output
        assert hog.poll() is None and max(_sandboxed_thread_counts(), default=0) >= 40  # held all along
    finally:
        hog.kill()
        hog.wait()
    rows = [json.loads(line) for line in (tmp_path / "right_results.jsonl").read_text().splitlines()]
    assert [(row["status"], row["reason"]) for row in rows] == [("passed", "")] * 3
