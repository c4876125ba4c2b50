"""What the checker lets a test see of the program: values, exceptions, handles and names.

These pin the semantics that keep the benchmarks' verdicts faithful (every canonical solution
passes: test_eval_scoring.py) while the program never reaches the verdict.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.eval.sandbox.runner import Job, open_sandbox


def verdict(box, program: str, tests: str, **job) -> str:
    outcome = box.run(Job(program=program, tests=tests, **job))
    return f"{outcome.status}: {outcome.reason}" if outcome.reason else outcome.status


def test_a_test_that_expects_an_exception_gets_it(any_sandbox):
    program = "def f(x):\n    raise ValueError('bad ' + x)\nclass Mine(Exception):\n    pass\ndef g():\n    raise Mine('m')\n"
    tests = "try:\n    f('x')\nexcept ValueError as e:\n    assert str(e) == 'bad x'\nelse:\n    assert False\n" \
            "try:\n    g()\nexcept Exception as e:\n    assert 'Mine' in str(e)\n"  # fmt: skip
    assert verdict(any_sandbox, program, tests) == "passed"


def test_a_program_that_dies_cannot_be_excused_by_the_test(any_sandbox):
    program = "import os\ndef f():\n    os._exit(0)\n"
    tests = "try:\n    f()\nexcept BaseException:\n    pass\nassert True\n"
    assert verdict(any_sandbox, program, tests) == "failed: the program ended during a call"


@pytest.mark.parametrize(
    "tests, expected",
    [("assert f('annie')\n", "passed"), ("assert not f('dawood')\n", "passed"), ("assert f('annie') == True\n", "failed")],
)
def test_objects_come_back_as_handles_that_only_have_a_truth(any_sandbox, tests, expected):
    """MBPP 737: `re.search` results, which the tests truth-test."""
    program = "import re\ndef f(s):\n    return re.search('^[aeiou]', s)\n"
    assert verdict(any_sandbox, program, tests).split(":")[0] == expected


def test_setup_objects_and_handles_go_back_by_name(any_sandbox):
    """MBPP 367 builds trees of the program's own class in its setup code; 601 makes `Pair`s."""
    program = ("class Node:\n    def __init__(self, v):\n        self.v, self.left = v, None\n"
               "def depth(n):\n    return 0 if n is None else 1 + depth(n.left)\n"
               "root = Node(1)\nroot.left = Node(2)\n")  # fmt: skip
    assert verdict(any_sandbox, program, "assert depth(root) == 2\nassert depth(Node(5)) == 1\n") == "passed"


def test_names_from_the_benchmark_solution_may_shadow_builtins(any_sandbox):
    """MBPP 126 defines `sum(a, b)`: taken from the trusted solution, never the program."""
    program = "def sum(a, b):\n    return a + b\n"
    assert verdict(any_sandbox, program, "assert sum(1, 2) == 3\n", remote=("sum",)) == "passed"
    assert verdict(any_sandbox, program, "assert sum(1, 2) == 3\n").startswith("failed: TypeError")


def test_builtins_and_stdlib_modules_in_tests(any_sandbox):
    """MBPP 533 passes `int`; 596 uses `sys` that only the program imported."""
    program = "import sys\ndef drop(xs, kind):\n    return [x for x in xs if not isinstance(x, kind)]\ndef size(t):\n" \
              "    return sys.getsizeof(t)\n"  # fmt: skip
    tests = "assert drop((1, 'a', 2.5), int) == ['a', 2.5]\nassert size((1, 2)) == sys.getsizeof((1, 2))\n"
    assert verdict(any_sandbox, program, tests) == "passed"


def test_the_tests_random_inputs_are_seeded(any_sandbox):
    tests = "import random\nassert random.random() == 0.8444218515250481\nassert f() == 1\n"  # random.seed(0)
    assert verdict(any_sandbox, "def f():\n    return 1\n", tests) == "passed"


def test_changes_to_arguments_stay_in_the_program(any_sandbox):
    """Arguments are copies: no benchmark test reads an argument back after the call."""
    tests = "xs = [3, 1, 2]\nassert f(xs) == [1, 2, 3]\nassert xs == [3, 1, 2]\n"
    assert verdict(any_sandbox, "def f(xs):\n    xs.sort()\n    return xs\n", tests) == "passed"


def test_prelude_and_entry_point_as_humaneval_uses_them(any_sandbox):
    prompt = "def helper(x):\n    return x * 2\n\ndef twice(x):\n    '''stub'''\n"
    job = dict(prelude=prompt, call=("check", "twice"), remote=("twice",))
    tests = "def check(candidate):\n    assert candidate(3) == helper(3)\n"
    assert verdict(any_sandbox, prompt + "    return helper(x)\n", tests, **job) == "passed"
    assert verdict(any_sandbox, prompt + "    return x\n", tests, **job).startswith("failed: AssertionError")


def server_children(box) -> list[str]:
    pid = box.checkers._proc.pid
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def test_a_checker_left_waiting_is_killed_at_the_deadline(any_sandbox):
    box = open_sandbox(any_sandbox.config.model_copy(update={"timeout_s": 2, "workers": 1}))
    try:
        outcome = box.run(Job(program="import time\ndef f():\n    time.sleep(60)\n", tests="assert f() == 1\n"))
        assert outcome.status == "timeout"
        time.sleep(0.5)
        assert server_children(box) == []
    finally:
        box.close()


def test_a_dead_checker_server_is_started_again(any_sandbox):
    job = Job(program="def f():\n    return 1\n", tests="assert f() == 1\n")
    assert any_sandbox.run(job).passed
    any_sandbox.checkers._proc.kill()
    any_sandbox.checkers._proc.wait()
    assert any_sandbox.run(job).passed


def test_an_exception_with_a_huge_name_is_a_failure_not_an_error(any_sandbox):
    """A 70 KB class name once made the verdict line outgrow the harness's read: `error`,
    chosen by the program (issue 24)."""
    program = "def f():\n    raise type('E' * 70_000, (Exception,), {})('m' * 70_000)\n"
    outcome = any_sandbox.run(Job(program=program, tests="assert f() == 1\n"))
    assert outcome.status == "failed" and outcome.reason.startswith("EEEE") and len(outcome.reason) <= 200


FORGED_REPLY = """
import json, os, struct, time
def f():
    payload = json.dumps({reply}).encode()
    os.write(3, struct.pack(">I", len(payload)) + payload)  # the entry's own channel
    time.sleep(30)
"""


@pytest.mark.parametrize("reply", ['["raise", "N" * 70_000, "m" * 70_000]', '["return", {"T" * 70_000: 1}]'])
def test_forged_replies_with_huge_text_are_failures_not_errors(any_sandbox, reply):
    outcome = any_sandbox.run(Job(program=FORGED_REPLY.format(reply=reply), tests="assert f() == 1\n"))
    assert outcome.status == "failed" and len(outcome.reason) <= 200


def test_a_range_that_would_expand_in_the_checker_is_refused_at_once(any_sandbox):
    """HumanEval/33 returning range(200_000_000): 40 bytes on the wire, 2 GB and ~7 s of the
    checker's time once the test took its tuple (issue 24)."""
    box = open_sandbox(any_sandbox.config.model_copy(update={"timeout_s": 8, "workers": 1}))
    try:
        outcome = box.run(Job(program="def f():\n    return range(200_000_000)\n", tests="assert tuple(f()) == ()\n"))
    finally:
        box.close()
    assert outcome.status == "failed" and "a range of more than 1000000 items" in outcome.reason
    assert outcome.seconds < 4
