"""lm-eval glue: the packaged tasks, the generation backend, and the hooks' targets.

Tasks are read from `harness/eval/benchmarks/tasks/` (`include_defaults=False`: fast start-up, and no
stock task can reach the hub), plus any directory the user includes (`--include-path`, run
as their YAML says). lm-eval does the prompting, few-shot, generation and stop sequences,
through our `hf` backend (`harness.eval.benchmarks.hf_backend`) or its own `vllm` model; the tasks'
filter hands every response to `execute_responses`, which runs them in the active sandbox;
`pass_at_k_metric` scores each problem from its outcomes. lm-eval's EvaluationTracker writes
its own results and samples files beside ours.
"""

from __future__ import annotations

import copy
import logging
from importlib import resources
from pathlib import Path
from typing import Sequence

from harness.devices import inference_dtype
from harness.errors import HarnessError, one_line
from harness.eval.benchmarks.passk import pass_at_k
from harness.eval.benchmarks.protocols import Variant
from harness.eval.benchmarks.scoring import active_sandbox, execute
from harness.eval.config import EvalConfig

LM_TASKS = {  # our task -> (greedy lm-eval task, sampled lm-eval task)
    "humaneval": ("harness_humaneval", "harness_humaneval_sampled"),
    "mbpp": ("harness_mbpp", "harness_mbpp_sampled"),
}

# lm-eval messages that say nothing the harness does not already report, repeated per batch or
# per task: a left-truncated prompt is counted once per prompt in `<task>/truncated_prompts` (the
# summary's "prompts cut"), and our tasks' datasets come from package data, not `--metadata`.
# And HFLM's warnings that a model object was passed: `load_model` does so on purpose (the
# device and the ranks are the harness's, see there).
QUIET = {"lm_eval.models.huggingface": ("Left truncation applied", "`pretrained` model kwarg is not of type",
                                        "Passed an already-initialized model"),
         "lm_eval.api.task": ("Custom kwargs can be passed to `--metadata`",)}


class _DropRepeated(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(prefix in message for prefix in self.prefixes)


def _no_git_hash() -> None:
    return None


def quiet_lm_eval() -> None:
    """Drop QUIET's messages (idempotent: one filter per logger); everything else passes. And
    lm-eval's `git_hash`: it runs `git describe` in the working directory, which names whatever
    repository the user stands in (not the code that ran) and prints git's "fatal: not a git
    repository" outside one. The run's provenance.json records the harness's own commit."""
    import lm_eval.evaluator

    for name, prefixes in QUIET.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropRepeated) for f in logger.filters):
            logger.addFilter(_DropRepeated(prefixes))
    lm_eval.evaluator.get_git_commit_hash = _no_git_hash


def tasks_dir() -> Path:
    return Path(str(resources.files("harness.eval.benchmarks").joinpath("tasks")))


def task_manager(include_paths: Sequence[Path] = ()):
    """Our task directory, then any the user includes (`--include-path`, as lm_eval's)."""
    from lm_eval.tasks import TaskManager

    quiet_lm_eval()  # every lm-eval run of the harness starts from its task manager
    paths = [str(tasks_dir()), *(str(Path(p)) for p in include_paths)]
    return TaskManager(include_path=paths if include_paths else paths[0], include_defaults=False)


def check_task_names(names: Sequence[str], include_paths: Sequence[Path]) -> None:
    """Every extra task must be defined in the included directories; else say which are."""
    import difflib

    known = task_manager(include_paths).all_tasks
    unknown = [name for name in names if name not in known]
    if unknown:
        close = sorted({m for name in unknown for m in difflib.get_close_matches(name, known, n=3)})
        where = ", ".join(map(str, include_paths)) or "any --include-path"
        raise HarnessError(
            f"unknown task {', '.join(unknown)} (not humaneval or mbpp, and not in {where})",
            fix=f"did you mean {', '.join(close)}?" if close else "pass --include-path DIR with the task's YAML",
        )
    unsafe = [name for name, task in load_tasks(list(names), task_manager(include_paths)).items()
              if getattr(task, "UNSAFE_CODE", False) or getattr(getattr(task, "config", None), "unsafe_code", False)]
    if unsafe:  # lm-eval would run their code in its own process, outside our sandbox
        raise HarnessError(f"included task {', '.join(map(str, unsafe))} executes code (unsafe_code), which the harness "
                           "runs only in its sandbox", fix="score its completions with `harness eval score`, or run it "
                           "with lm_eval directly if you accept unsandboxed execution")  # fmt: skip


def load_tasks(names: list[str], manager=None) -> dict:
    """Task objects by name (lm-eval 0.4.13's `TaskManager.load`; older: `get_task_dict`)."""
    manager = manager or task_manager()
    if hasattr(manager, "load"):
        return manager.load(names)["tasks"]
    from lm_eval.tasks import get_task_dict

    return get_task_dict(names, manager)


# Samples per problem of the decoding now running (`run_variant`). Under data parallelism
# lm-eval evens out the ranks' request counts by sending a rank's last request again (the
# evaluator's `padding_requests`) and appends those responses to that request, so its problem
# would get more rows than samples; the filter keeps the first `repeats`, the real ones.
_repeats: int | None = None


def execute_responses(task: str, resps: list[list[str]], docs) -> list[list[dict]]:
    """lm-eval filter: every response of every problem, run in parallel; one row per sample."""
    if _repeats is not None:
        resps = [resp[:_repeats] for resp in resps]
    samples = [(doc["task_id"], i, text) for doc, resp in zip(docs, resps) for i, text in enumerate(resp)]
    rows = iter(execute(task, samples, active_sandbox()))
    return [[next(rows) for _ in resp] for resp in resps]


def pass_at_k_metric(predictions: list[list[dict]], ks) -> dict[str, float]:
    """lm-eval metric: pass@k of one problem from its outcome rows (k above n left out)."""
    outcomes = predictions[0]
    n, c = len(outcomes), sum(row["status"] == "passed" for row in outcomes)
    return {f"pass@{k}": pass_at_k(n, c, k) for k in ([ks] if isinstance(ks, int) else ks) if k <= n}


def load_model(model_dir: Path, cfg: EvalConfig, *, device: str, context: int, shard: bool = False):
    """The backend cfg names on a local directory: `hf` (ours on HFLM: float32 on the CPU, so
    that CPU results do not depend on autocast; bf16 on a GPU, `devices.inference_dtype`) or
    lm-eval's own `vllm` (`vllm_model_args`). `shard`: this process is one rank of the
    harness's process group and scores its share of the problems (`hf` only).

    The `hf` model is loaded here, on `device`, and handed to HFLM as a model: given a path,
    HFLM picks the device itself and, under a launcher, starts Accelerate, which numbers ranks
    by their index on the node (repeated across nodes) and may spread the model over GPUs."""
    import lm_eval.models  # noqa: F401  (registers the built-in backends first; docs/MEASURED.md)

    if cfg.backend == "vllm":
        check_backend(cfg)
        from lm_eval.api.registry import get_model

        return get_model("vllm")(**vllm_model_args(model_dir, cfg, context))
    from harness.eval.benchmarks.hf_backend import HarnessHFLM

    quiet_lm_eval()
    try:
        model = load_causal_lm(model_dir, device)
        lm = HarnessHFLM(pretrained=model, batch_size=cfg.batch_size, max_length=cfg.max_length,
                         context_length=None if cfg.max_length else context, shard=shard)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot load {model_dir} as a causal LM: {one_line(exc)}") from None
    lm.pretrained = str(model_dir)  # what lm-eval's results name as the model, as when given the path
    return lm


def load_causal_lm(model_dir: Path, device: str):
    """The exported causal LM in `devices.inference_dtype(device)`, on `device`, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, inference_dtype(device))
    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(device).eval()


def vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def check_backend(cfg: EvalConfig) -> None:
    """Refuse a generation backend this environment cannot run; `harness run` asks before
    training, so a missing vllm costs a second, not the evaluation after days of training."""
    if cfg.enabled and cfg.backend == "vllm" and not vllm_importable():
        raise HarnessError("eval.backend=vllm but vllm is not importable in this environment (it is not among the "
                           "harness's dependencies: vllm pins its own torch)",
                           fix="set eval.backend=hf, or run in an environment or image with vllm installed")


def vllm_model_args(model_dir: Path, cfg: EvalConfig, context: int, gpus: int | None = None) -> dict:
    """Arguments of lm-eval 0.4.13's `VLLM` model (lm_eval/models/vllm_causallms.py), nothing
    else: data parallel over the job's GPUs (one engine per GPU, lm-eval's own scheme), the
    model's dtype, lm-eval's automatic batch size (vLLM batches continuously, so eval.batch_size,
    a pin for HF's padded batches, does not apply), and max_length = the trained context, so
    lm-eval left-truncates prompts to context - max_gen_toks. bf16, not "auto": exports are
    written in fp32, which vLLM would then serve at fp32 speed and memory."""
    return {
        "pretrained": str(model_dir),
        "dtype": "bfloat16",
        "batch_size": "auto",
        "max_length": cfg.max_length or context,
        "tensor_parallel_size": 1,
        "data_parallel_size": gpus if gpus is not None else visible_gpus(),
        "seed": cfg.seed,
    }


def visible_gpus() -> int:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES when set (Slurm sets it), else torch's count."""
    import os

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return max(1, len([d for d in visible.split(",") if d.strip()]))
    import torch

    return max(1, torch.cuda.device_count())


def run_variant(lm, tasks: list[str], variant: Variant, *, max_gen_toks: int | None, limit: int | None, seed: int,
                tracker_dir: Path | None = None) -> dict:
    """One decoding run of lm-eval over our tasks; lm-eval's results dict with samples. With
    tracker_dir, lm-eval's own EvaluationTracker writes its results and samples files there,
    as `lm_eval --output_path DIR --log_samples` would."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    manager = task_manager()  # ours, also for simple_evaluate: its default indexes ~14k stock YAMLs (~70 s)
    task_objects = load_tasks([LM_TASKS[task][variant.sampled] for task in tasks], manager)
    for task in task_objects.values():
        task.set_config("repeats", variant.n)
        task.set_config("generation_kwargs", variant.generation_kwargs(max_gen_toks), update=True)
    tracker = EvaluationTracker(output_path=str(tracker_dir)) if tracker_dir else None
    global _repeats
    _repeats = variant.n
    try:
        results = lm_eval.simple_evaluate(
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
            evaluation_tracker=tracker,
        )
    finally:
        _repeats = None
    if results is None:
        return None  # not rank 0 of a sharded evaluation: rank 0 holds every rank's samples
    if tracker is not None:
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)  # adds task_hashes to results
        for name in results["configs"]:
            tracker.save_results_samples(task_name=name, samples=copy.deepcopy(samples[name]))
        results["samples"] = samples
    return results


def run_extra(lm, names: Sequence[str], include_paths: Sequence[Path], *, limit: int | None, seed: int,
              tracker_dir: Path) -> dict:
    """Tasks from --include-path directories, as their YAML defines them (lm-eval's metrics, not
    our rows). Their code, if any, is not ours to sandbox: lm-eval refuses `unsafe_code` tasks."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(tracker_dir))
    results = lm_eval.simple_evaluate(
        model=lm, tasks=list(names), task_manager=task_manager(include_paths), limit=limit, log_samples=True,
        confirm_run_unsafe_code=False, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
        fewshot_random_seed=seed, evaluation_tracker=tracker,
    )  # fmt: skip
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for name in results["configs"]:
        tracker.save_results_samples(task_name=name, samples=samples[name])
    return results


def extra_metrics(results: dict) -> dict[str, float]:
    """`<task>/<metric>_<filter>` for every number lm-eval reports (MLflow refuses ',' in names)."""
    return {f"{task}/{key.replace(',', '_')}": value for task, values in results["results"].items()
            for key, value in values.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}  # fmt: skip


def truncation_counts(lm, tasks: list[str], *, gather: bool = False) -> dict:
    """Per task: distinct prompts cut to their budget (`<task>/truncated_prompts`, a metric)
    and the budget (`prompt_budget_<task>`, a fact). Only the hf backend counts them. `gather`:
    the ranks of a sharded evaluation each saw their own prompts; every rank must call this,
    rank 0 gets the counts over all of them (the others an empty dict)."""
    seen = {name: (set(getattr(lm, "prompts", {}).get(name, ())), set(getattr(lm, "truncated", {}).get(name, ())),
                   getattr(lm, "budgets", {}).get(name)) for task in tasks for name in LM_TASKS[task]}
    if gather:
        from harness.ranks import gather_to_main

        every = gather_to_main(seen)
        if every is None:
            return {}
        seen = {name: (set().union(*(rank[name][0] for rank in every)), set().union(*(rank[name][1] for rank in every)),
                       min((rank[name][2] for rank in every if rank[name][2] is not None), default=None))
                for name in seen}  # fmt: skip
    out: dict = {}
    for task in tasks:
        names = [name for name in LM_TASKS[task] if seen[name][0]]
        if not names:
            out[f"prompt_budget_{task}"] = "not counted (vllm: lm-eval cuts prompts to max_length - max_gen_toks)"
            continue
        out[f"{task}/truncated_prompts"] = len(set().union(*(seen[name][1] for name in names)))
        out[f"prompt_budget_{task}"] = min(seen[name][2] for name in names)
    return out


def rows_of(results: dict, task: str, variant: Variant) -> list[dict]:
    """Per-sample rows of one task, in problem order, from lm-eval's logged samples."""
    samples = sorted(results["samples"][LM_TASKS[task][variant.sampled]], key=lambda s: s["doc_id"])
    return [row for sample in samples for row in sample["filtered_resps"][0]]


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")
