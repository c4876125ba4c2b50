"""The checker under a budget of its own: what the tests do with a program's values is bounded too.

Before issue 24 the checker ran beside the sandbox with only a 2 GiB RLIMIT_AS: a range the
test expanded took 2 GB and 7 s of CPU, and ints whose hashes collide burned a core until the
wall-clock limit. Now each check has its own memory and CPU budget (and, with cgroups, one
cgroup for all checks), and hitting it is the program's `failed` or `timeout`, never `error`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.eval.sandbox.runner import Job, open_sandbox


def checker_processes(box, patience_s: float = 5.0) -> list[int]:
    """Checker processes of this sandbox but its server (watchers and checks) still alive
    after `patience_s`: a watcher that wrote its verdict may take a moment to exit."""
    deadline = time.monotonic() + patience_s
    while (found := _checker_processes(box)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _checker_processes(box) -> list[int]:
    """The server runs in a session of its own, which its watchers and checks share."""
    server = box.checkers._proc.pid
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int(entry.name) != server:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == server:  # the session id, after state, ppid and pgrp
                    found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


@pytest.fixture
def one_second_checker(any_sandbox):
    """CPU budget 1 s for program and checker alike; a wall clock far past it, so that the
    budget (not the deadline) ends the check even on a loaded machine."""
    box = open_sandbox(any_sandbox.config.model_copy(update={"cpu_s": 1, "timeout_s": 40, "workers": 1}))
    yield box
    box.close()


def test_colliding_hashes_spend_the_checkers_cpu_budget_not_the_hosts(one_second_checker):
    """100k ints that all hash to 0: the test's set() is ~5e9 comparisons, in C, where no
    signal handler runs; the hard limit kills the check and its watcher reports it."""
    program = "def f():\n    return [k * (2**61 - 1) for k in range(1, 100_001)]\n"
    outcome = one_second_checker.run(Job(program=program, tests="assert len(set(f())) == 100_000\n"))
    assert (outcome.status, outcome.reason) == ("timeout", "the checker's CPU budget of 1 s ran out on the program's values")
    assert outcome.seconds < 30
    assert checker_processes(one_second_checker) == []


def test_a_cpu_budget_hit_in_python_code_is_a_timeout_even_if_the_test_catches_everything(one_second_checker):
    tests = "values = f()\ntry:\n    while True:\n        sorted(values)\nexcept BaseException:\n    pass\nassert True\n"
    outcome = one_second_checker.run(Job(program="def f():\n    return list(range(1000))\n", tests=tests))
    assert (outcome.status, outcome.reason) == ("timeout", "the checker's CPU budget of 1 s ran out on the program's values")


def test_tests_that_outgrow_the_checkers_memory_fail_the_program(any_sandbox):
    budget = 512 + 32 * any_sandbox.config.value_kb // 1024
    outcome = any_sandbox.run(Job(program="def f():\n    return 1\n", tests="grown = bytearray(1 << 30)\nassert f() == 1\n"))
    assert (outcome.status, outcome.reason) == ("failed", f"the checker's memory budget of {budget} MB ran out on the program's values")


def test_checks_run_in_a_cgroup_of_their_own(any_sandbox):
    if any_sandbox.hierarchy is None:
        pytest.skip("no cgroup can be made here: the checks are bounded by their rlimits alone")
    assert any_sandbox.run(Job(program="def f():\n    return 1\n", tests="assert f() == 1\n")).passed
    lines = Path(f"/proc/{any_sandbox.checkers._proc.pid}/cgroup").read_text().splitlines()
    joined = {line.split(":")[1]: line.split(":", 2)[2] for line in lines}
    for controller in any_sandbox.hierarchy.parents:
        assert joined[controller].endswith("/checkers"), (controller, joined)
