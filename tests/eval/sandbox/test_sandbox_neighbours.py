"""Correct programs beside hostile ones: a neighbour must never turn a right answer into a failure.

Before per-program uids, cgroups and the seccomp filter, every sandbox ran as uid 65534 and
shared RLIMIT_NPROC, so a fork bomb made the threads of correct programs beside it fail
("can't start new thread"); and CPU burners that called setsid() got one scheduler share
each, so a correct but slower program beside 50 of them timed out. Both were reproduced on
the old code (issue 12). Here each correct program must pass every time.
"""

from __future__ import annotations

from harness.eval.sandbox.runner import Job
from tests.eval.conftest import sandbox_for

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
