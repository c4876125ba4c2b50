"""The benchmark prompts as text, without lm-eval: for what must be fast and torch-free
(`harness plan`'s context check) and for the canonical-solution NLL.

They are the exact strings lm-eval builds from the packaged task YAMLs (`tasks/harness_*.yaml`)
for greedy evaluation: HumanEval 0-shot is the problem's `prompt`; MBPP 3-shot is the
examples 2, 3 and 4 (`doc_to_text` + `code` + "\\n[DONE]"), joined and followed by lm-eval's
few-shot delimiter "\\n\\n", then the problem's `doc_to_text`. A test compares every prompt with
lm-eval's `fewshot_context`, so the two cannot drift apart.
"""

from __future__ import annotations

from harness.data import benchmarks

FEWSHOT_DELIMITER = "\n\n"
MBPP_SHOTS = (2, 3, 4)
SOLUTION_FIELD = {"humaneval": "canonical_solution", "mbpp": "code"}


def mbpp_text(doc: dict) -> str:
    tests = "\n".join(doc["test_list"][:3])
    return (f"You are an expert Python programmer, and here is your task: {doc['text']} "
            f"Your code should pass these tests:\n\n{tests}\n[BEGIN]\n")


def _mbpp_fewshot() -> str:
    shots = [p for p in benchmarks.mbpp("prompt") if p["task_id"] in MBPP_SHOTS]
    return FEWSHOT_DELIMITER.join(mbpp_text(p) + p["code"] + "\n[DONE]" for p in shots) + FEWSHOT_DELIMITER


def benchmark_prompts(task: str) -> list[tuple[object, str, str]]:
    """(task_id, prompt, canonical solution) of every test problem, in benchmark order."""
    if task == "humaneval":
        return [(p["task_id"], p["prompt"], p["canonical_solution"]) for p in benchmarks.humaneval()]
    if task == "mbpp":
        head = _mbpp_fewshot()
        return [(p["task_id"], head + mbpp_text(p), p["code"]) for p in benchmarks.mbpp("test")]
    raise ValueError(f"no prompts for task {task!r}")
