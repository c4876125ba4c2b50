"""lm-eval glue: the packaged tasks, a Hugging Face model through HFLM, and the hooks' targets.

Tasks are read only from `harness/eval/tasks/` (`include_defaults=False`: fast start-up, and
no stock task can reach the hub). lm-eval does the prompting, few-shot, generation and stop
sequences; the tasks' filter hands every response to `execute_responses`, which runs them
in the active sandbox; `pass_at_k_metric` scores each problem from its outcomes.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from harness.errors import HarnessError, one_line
from harness.eval.passk import pass_at_k
from harness.eval.protocols import Variant
from harness.eval.scoring import active_sandbox, execute

LM_TASKS = {  # our task -> (greedy lm-eval task, sampled lm-eval task)
    "humaneval": ("harness_humaneval", "harness_humaneval_sampled"),
    "mbpp": ("harness_mbpp", "harness_mbpp_sampled"),
}


def tasks_dir() -> Path:
    return Path(str(resources.files("harness.eval").joinpath("tasks")))


def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_dir()), include_defaults=False)


def load_tasks(names: list[str], manager=None) -> dict:
    """Task objects by name (lm-eval 0.4.13's `TaskManager.load`; older: `get_task_dict`)."""
    manager = manager or task_manager()
    if hasattr(manager, "load"):
        return manager.load(names)["tasks"]
    from lm_eval.tasks import get_task_dict

    return get_task_dict(names, manager)


def execute_responses(task: str, resps: list[list[str]], docs) -> list[list[dict]]:
    """lm-eval filter: every response of every problem, run in parallel; one row per sample."""
    samples = [(doc["task_id"], i, text) for doc, resp in zip(docs, resps) for i, text in enumerate(resp)]
    rows = iter(execute(task, samples, active_sandbox()))
    return [[next(rows) for _ in resp] for resp in resps]


def pass_at_k_metric(predictions: list[list[dict]], ks) -> dict[str, float]:
    """lm-eval metric: pass@k of one problem from its outcome rows (k above n left out)."""
    outcomes = predictions[0]
    n, c = len(outcomes), sum(row["status"] == "passed" for row in outcomes)
    return {f"pass@{k}": pass_at_k(n, c, k) for k in ([ks] if isinstance(ks, int) else ks) if k <= n}


def load_model(model_dir: Path, *, batch_size: int, device: str, max_length: int):
    """HFLM on a local directory; float32 so that CPU results do not depend on autocast."""
    import lm_eval.models  # noqa: F401  (registers the built-in backends first; docs/MEASURED.md)
    from lm_eval.models.huggingface import HFLM

    try:
        return HFLM(pretrained=str(model_dir), device=device, batch_size=batch_size, dtype="float32", max_length=max_length)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot load {model_dir} as a causal LM: {one_line(exc)}") from None


def model_max_length(model_dir: Path, max_gen_toks: int, requested: int | None) -> int:
    """lm-eval's max_length: the model's context, unless that leaves no room to generate."""
    if requested is not None:
        if requested <= max_gen_toks:
            raise HarnessError(f"eval.max_length {requested} must exceed max_gen_toks {max_gen_toks}")
        return requested
    config = json.loads((model_dir / "config.json").read_text())
    positions = next((config[key] for key in ("max_position_embeddings", "n_positions", "max_seq_len") if key in config), 2048)
    # HFLM asserts max_length > max_gen_toks. A model trained on short windows (laptop
    # recipes: 256) keeps its whole window for the prompt and generates past it.
    return positions if positions > max_gen_toks else positions + max_gen_toks


def run_variant(lm, tasks: list[str], variant: Variant, *, max_gen_toks: int | None, limit: int | None, seed: int) -> dict:
    """One decoding run of lm-eval over our tasks; lm-eval's results dict with samples."""
    import lm_eval

    manager = task_manager()  # ours, also for simple_evaluate: its default indexes ~14k stock YAMLs (~70 s)
    task_objects = load_tasks([LM_TASKS[task][variant.sampled] for task in tasks], manager)
    for task in task_objects.values():
        task.set_config("repeats", variant.n)
        task.set_config("generation_kwargs", variant.generation_kwargs(max_gen_toks), update=True)
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=list(task_objects.values()),
        task_manager=manager,
        limit=limit,
        bootstrap_iters=0,  # confidence intervals come from the per-sample rows
        log_samples=True,
        confirm_run_unsafe_code=True,  # the code runs in our sandbox, never in lm-eval's process
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


def rows_of(results: dict, task: str, variant: Variant) -> list[dict]:
    """Per-sample rows of one task, in problem order, from lm-eval's logged samples."""
    samples = sorted(results["samples"][LM_TASKS[task][variant.sampled]], key=lambda s: s["doc_id"])
    return [row for sample in samples for row in sample["filtered_resps"][0]]


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")
