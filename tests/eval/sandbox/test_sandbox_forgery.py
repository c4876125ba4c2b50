"""Forged passes: wrong solutions that try to make the harness say `passed`.

Each completion below is wrong (it returns 0, or the input unchanged) and adds a trick. With
the verdict decided inside the program (a nonce printed after the tests), the frame, gc,
atexit, settrace and always-equal tricks passed (issue 12 reproduced them before the
checker existed). Now the tests run in a checker process outside the sandbox and see only
plain values, so every one of them must fail, under every sandbox configuration.
"""

from __future__ import annotations

import pytest

from harness.eval.benchmarks import programs, scoring

STEAL_SECRET = """
import gc, os, sys
found = []
frame = sys._getframe()
while frame is not None:                     # the calling frames (the old nonce lived there)
    found += [v for v in frame.f_locals.values() if isinstance(v, (bytes, str)) and len(v) == 32]
    frame = frame.f_back
found += [o for o in gc.get_objects() if isinstance(o, bytes) and len(o) == 32]  # the heap
for secret in found[:50]:
    line = (secret if isinstance(secret, bytes) else secret.encode()) + b"\\n"
    for fd in (1, 2, 3):
        try:
            os.write(fd, b"\\n" + line)
        except OSError:
            pass
os._exit(0)
"""
ATEXIT_PASS = """
import atexit, json, os
def forge():
    verdict = json.dumps({"status": "passed", "reason": ""}).encode()
    for fd in (1, 2, 3):
        try:
            os.write(fd, verdict + b"\\n")
        except OSError:
            pass
    os._exit(0)
atexit.register(forge)
"""
SETTRACE_NO_OP_CHECK = """
import sys
def tracer(frame, event, arg):
    for name in ("check", "candidate"):
        function = frame.f_globals.get(name)
        if callable(function) and hasattr(function, "__code__"):
            function.__code__ = (lambda *args, **kwargs: None).__code__
    return tracer
sys.settrace(tracer)
sys._getframe().f_trace = tracer
"""
PATCH_BUILTINS = """
import builtins
class Yes:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
builtins.AssertionError = type("Ignored", (Exception,), {})
builtins.abs = lambda x: 0
builtins.isinstance = lambda *a: True
builtins.len = lambda x: 3
"""
FAKE_FRAMES = """
import json, os, struct
for message in (["ready"], ["return", True], ["return", True], ["return", True], ["stop"]):
    payload = json.dumps(message).encode()
    os.write(3, struct.pack(">I", len(payload)) + payload)
"""
PROC_MEM = """
import ctypes, os
libc = ctypes.CDLL(None)
libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
try:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            open(f"/proc/{pid}/mem", "rb").read(1)
except OSError:
    pass
"""

HE = "HumanEval/0"  # has_close_elements(numbers, threshold) -> bool
HE_WRONG = "    return 0\n"
HE_ALWAYS_EQUAL = """    class Yes:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __bool__(self): return True
    return Yes()
"""
HE_EQUAL_STR = """    class Yes(int):
        def __eq__(self, other): return True
        __hash__ = int.__hash__
    return Yes(0)
"""
MBPP = 11  # remove_Occ(s, ch): the string without the first and last ch
MBPP_WRONG = "def remove_Occ(s, ch):\n    return s\n"
MBPP_ALWAYS_EQUAL = "class Yes(str):\n    def __eq__(self, other): return True\n    __hash__ = str.__hash__\ndef remove_Occ(s, ch):\n    return Yes(s)\n"

TRICKS = {"steal_secret": STEAL_SECRET, "atexit_pass": ATEXIT_PASS, "settrace_no_op_check": SETTRACE_NO_OP_CHECK,
          "patch_builtins": PATCH_BUILTINS, "fake_frames": FAKE_FRAMES, "proc_mem": PROC_MEM}  # fmt: skip


def statuses(sandbox, task: str, completions: dict[str, str]) -> dict[str, str]:
    tid = HE if task == "humaneval" else MBPP
    rows = scoring.execute(task, [(tid, i, c) for i, c in enumerate(completions.values())], sandbox)
    return {name: f"{row['status']}: {row['reason']}" for name, row in zip(completions, rows)}


def test_forged_humaneval_passes_fail(isolated):
    completions = {name: HE_WRONG + trick for name, trick in TRICKS.items()}
    completions.update(always_equal=HE_ALWAYS_EQUAL, int_subclass_always_equal=HE_EQUAL_STR)
    seen = statuses(isolated, "humaneval", completions)
    assert not [name for name, status in seen.items() if status.startswith("passed")], seen


def test_forged_mbpp_passes_fail(isolated):
    completions = {name: MBPP_WRONG + trick for name, trick in TRICKS.items()}
    completions.update(always_equal=MBPP_ALWAYS_EQUAL)
    seen = statuses(isolated, "mbpp", completions)
    assert not [name for name, status in seen.items() if status.startswith("passed")], seen


def test_the_same_tricks_beside_a_correct_solution_do_not_fail_it(isolated):
    """Control: exit handlers, tracing or patching `abs` and `AssertionError` in its own
    interpreter does not fail a right answer. (Replacing `isinstance` or `len` breaks the
    sandbox entry's encoder in that interpreter, which fails the program: its own doing.)"""
    right = programs.problems("mbpp")[MBPP]["code"] + "\n"
    harmless = {"atexit": ATEXIT_PASS.replace("os._exit(0)", "pass"), "settrace": SETTRACE_NO_OP_CHECK,
                "builtins": PATCH_BUILTINS.split("builtins.isinstance")[0]}  # fmt: skip
    seen = statuses(isolated, "mbpp", {name: right + trick for name, trick in harmless.items()})
    assert all(status == "passed: " for status in seen.values()), seen


@pytest.mark.parametrize(
    "body, reason",
    [
        ("    import sys\n    sys.exit(0)\n", "SystemExit"),
        ("    import os\n    os._exit(0)\n", "ended during a call"),
        ("    return (x for x in iter(int, 1))\n", "iterator of more than"),  # an endless generator
        ("    return 'x' * (8 << 20)\n", "over the"),  # larger than value_kb
        ("    return lambda: True\n", "AssertionError"),  # a handle: it never equals True
    ],
)
def test_calls_that_end_or_return_no_answer_fail(isolated, body, reason):
    row = scoring.execute("humaneval", [(HE, 0, body)], isolated)[0]
    assert row["status"] in ("failed", "timeout") and reason in row["reason"], row["reason"]
