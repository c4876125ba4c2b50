"""The `!function` hooks of the harness's lm-eval tasks: packaged data in, sandboxed outcomes out.

lm-eval imports this file by path (next to the YAMLs). The hooks only delegate: data come
from `harness.data.benchmarks` (checksummed package data, never the hub), the filter runs
every response of a task through the active sandbox in parallel (so execution happens once,
for all problems together, rather than one problem at a time inside the metric), and the
metric turns each problem's outcomes into pass@k.
"""

from __future__ import annotations


def humaneval_dataset(**_metadata):
    import datasets

    from harness.data import benchmarks

    return datasets.DatasetDict({"test": datasets.Dataset.from_list([dict(p) for p in benchmarks.humaneval()])})


def mbpp_dataset(**_metadata):
    import datasets

    from harness.data import benchmarks

    rows = [dict(p) for p in benchmarks.mbpp("test")]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def mbpp_fewshot():
    """Task ids 2, 3 and 4, as lm-eval's `list_fewshot_samples` (same fields and text)."""
    from harness.data import benchmarks

    keep = ("task_id", "text", "code", "test_list")
    chosen = [p for p in benchmarks.mbpp("prompt") if p["task_id"] in (2, 3, 4)]
    return [{**{key: p[key] for key in keep}, "is_fewshot": True} for p in chosen]


def execute_humaneval(resps, docs):
    from harness.eval.benchmarks.lmeval import execute_responses

    return execute_responses("humaneval", resps, docs)


def execute_mbpp(resps, docs):
    from harness.eval.benchmarks.lmeval import execute_responses

    return execute_responses("mbpp", resps, docs)


def pass_at_k(references, predictions, k=(1,)):
    from harness.eval.benchmarks.lmeval import pass_at_k_metric

    return pass_at_k_metric(predictions, k)
