"""Our prompt strings are lm-eval's, problem by problem (the plan check and the NLL rely on it)."""

from harness.eval.benchmarks.lmeval import load_tasks
from harness.eval.benchmarks.prompts import benchmark_prompts


def test_prompts_equal_lm_evals_contexts():
    tasks = load_tasks(["harness_humaneval", "harness_mbpp"])
    for ours, name in (("humaneval", "harness_humaneval"), ("mbpp", "harness_mbpp")):
        task = tasks[name]
        theirs = [(d["task_id"], task.fewshot_context(d, task.config.num_fewshot or 0)) for d in task.test_docs()]
        assert [(tid, prompt) for tid, prompt, _ in benchmark_prompts(ours)] == theirs
        assert len(theirs) == {"humaneval": 164, "mbpp": 500}[ours]
