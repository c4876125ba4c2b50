"""`evaluate_model`: score a Hugging Face causal LM directory on HumanEval/MBPP under a protocol.

The contract the pipeline relies on: per-sample rows go to `<out>/<task>_<variant>.jsonl`,
lm-eval's own results (configs, task versions, n-shot, task hashes; git_hash is null, see lmeval.quiet_lm_eval) to
`<out>/lm_eval_<variant>.json`, lm-eval's files as `lm_eval --output_path --log_samples` writes
them (results and samples, date-stamped) under `<out>/lm_eval/<variant>/`, and the summary to
`<out>/summary.json`, which is also returned. In the summary every key with a `/` is a
numeric metric (`humaneval/pass_at_1`, `humaneval/truncated_prompts`, ...); every key without
one records how the numbers were made (protocol, backend, batch size, context and prompt
budgets, samples, limits, sandbox, lm-eval version), so the caller can log the first kind as
MLflow metrics and the second as params.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from harness import rundir
from harness.devices import inference_dtype
from harness.errors import HarnessError
from harness.eval.benchmarks.context import trained_context
from harness.eval.benchmarks.protocols import Variant, protocol_metrics, variants
from harness.eval.benchmarks.scoring import summarize, using_sandbox, write_rows
from harness.eval.config import EvalConfig
from harness.eval.sandbox.runner import Sandbox, open_sandbox


def resolve_model_dir(target: Path) -> Path:
    """A harness run directory means its export; any directory with config.json is a model."""
    target = Path(target)
    export = target / rundir.EXPORT
    if (export / "config.json").is_file():
        _check_config(export / "config.json")
        return export
    if (target / "config.json").is_file():
        _check_config(target / "config.json")
        return target
    raise HarnessError(
        f"{target} is neither a harness run directory (export/config.json) nor a Hugging Face model directory (config.json)",
        fix="pass a run directory made by `harness run`, or a directory written by save_pretrained",
    )


def _check_config(path: Path) -> None:
    """A malformed config.json is the user's to fix: one line, not transformers' traceback."""
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path} is not valid JSON ({exc})", fix="restore the model's config.json") from None
    if not isinstance(config, dict):
        raise HarnessError(f"{path} holds a JSON {type(config).__name__}, not a model configuration",
                           fix="restore the model's config.json (save_pretrained writes it)")


def shards_over(cfg: EvalConfig, world: int) -> bool:
    """Whether `world` ranks can share cfg's scoring: the hf backend (vllm runs its own data
    parallel from one process), and at least one problem per rank in every task, since
    lm-eval pads a rank's requests with copies of its own last one and a rank with none would
    skip the collectives the others wait in."""
    if world <= 1 or cfg.backend != "hf" or not cfg.enabled or not cfg.tasks:
        return False
    from harness.data import benchmarks

    sizes = {"humaneval": len(benchmarks.humaneval()), "mbpp": len(benchmarks.mbpp("test"))}
    fewest = min(min(sizes[task], cfg.limit or sizes[task]) for task in cfg.tasks)
    return fewest >= world


def check_shareable(cfg: EvalConfig, world: int, extra_tasks: Sequence[str] = ()) -> None:
    """Refuse `world` ranks sharing what they cannot (`shards_over`; included tasks, scored by
    lm-eval's own metrics, are not gathered)."""
    if extra_tasks or not shards_over(cfg, world):
        raise HarnessError(f"{world} ranks cannot share this evaluation (included tasks, the vllm backend, or fewer "
                           "problems than ranks)", fix="score it from one process: `harness eval` without a launcher")


def evaluate_model(
    model_dir: Path, cfg: EvalConfig, out_dir: Path, *, device: str = "cpu", allow_unsafe: bool = False,
    extra_tasks: Sequence[str] = (), include_paths: Sequence[Path] = (), shard: bool = False,
) -> dict | None:
    """Run cfg's protocol on cfg's tasks, and `extra_tasks` from `include_paths` as their YAML
    says; write rows, lm-eval's results and the summary to out_dir. `eval.num_threads` holds
    for this call only (the next arm of a study gets its own).

    `shard`: every rank of the process group calls this; each generates and executes its share
    of the problems (lm-eval's data parallelism, `hf_backend.HarnessHFLM`), rank 0 gathers the
    rows, writes everything and returns the summary; the other ranks write nothing and return
    None. Greedy rows are those of one process (tests/eval/benchmarks/test_sharded_eval.py);
    sampled ones are another draw, since every rank's sampler starts from the same seed."""
    from harness.threads import torch_threads

    with torch_threads(cfg.num_threads):
        return _evaluate_model(model_dir, cfg, out_dir, device=device, allow_unsafe=allow_unsafe,
                               extra_tasks=extra_tasks, include_paths=include_paths, shard=shard)


def _evaluate_model(model_dir: Path, cfg: EvalConfig, out_dir: Path, *, device: str, allow_unsafe: bool,
                    extra_tasks: Sequence[str], include_paths: Sequence[Path], shard: bool) -> dict | None:
    from harness.ranks import group_size

    rank, world = group_size() if shard else (0, 1)
    if shard:
        check_shareable(cfg, world, extra_tasks)
    main = rank == 0
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    sandbox = open_sandbox(cfg.sandbox, allow_unsafe=allow_unsafe)  # refuse before loading anything
    if extra_tasks:
        from harness.eval.benchmarks.lmeval import check_task_names

        check_task_names(extra_tasks, include_paths)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")  # a local directory must never turn into a hub lookup
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from harness.eval.benchmarks import lmeval

    context = trained_context(model_dir)
    lm = lmeval.load_model(model_dir, cfg, device=device, context=context, shard=shard)
    chosen = variants(cfg)
    per_task: dict[str, dict[str, dict]] = defaultdict(dict)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    with using_sandbox(sandbox):
        for variant in chosen if cfg.tasks else []:
            results = lmeval.run_variant(
                lm, list(cfg.tasks), variant, max_gen_toks=cfg.max_gen_toks, limit=cfg.limit, seed=cfg.seed,
                tracker_dir=out_dir / "lm_eval" / variant.name if main else None,
            )
            if not main:
                continue  # rank 0 holds every rank's samples
            for task in cfg.tasks:
                rows = lmeval.rows_of(results, task, variant)
                write_rows(out_dir / f"{task}_{variant.name}.jsonl", rows)
                per_task[task][variant.name] = summarize(rows, variant.ks)
                _check_agreement(results, task, variant, per_task[task][variant.name])
            _write_lm_eval_results(out_dir / f"lm_eval_{variant.name}.json", results)
    counts = lmeval.truncation_counts(lm, list(cfg.tasks), gather=shard)
    if not main:
        return None
    summary: dict = {}
    if extra_tasks:
        results = lmeval.run_extra(lm, extra_tasks, include_paths, limit=cfg.limit, seed=cfg.seed,
                                   tracker_dir=out_dir / "lm_eval" / "included")  # fmt: skip
        _write_lm_eval_results(out_dir / "lm_eval_included.json", results)
        summary.update(lmeval.extra_metrics(results))
    for task in cfg.tasks:
        summary.update(protocol_metrics(task, per_task[task], chosen))
    summary.update(counts)
    summary.update(_facts(cfg, chosen, sandbox, model_dir, device, context, lmeval.lm_eval_version()))
    summary["ranks"] = world  # processes that shared the problems (sampled rows depend on it)
    summary["torch_threads"] = _torch_threads()  # completions do not depend on it; time does (recipes/laptop/base.yaml)
    if extra_tasks:
        summary.update(included_tasks=",".join(extra_tasks), include_paths=",".join(map(str, include_paths)))
    rundir.write_json(out_dir / rundir.SUMMARY, summary)
    return summary


def _check_agreement(results: dict, task: str, variant: Variant, ours: dict) -> None:
    """lm-eval's aggregate and ours come from the same rows; a mismatch is a harness bug."""
    from harness.eval.benchmarks.lmeval import LM_TASKS

    theirs = results["results"][LM_TASKS[task][variant.sampled]].get("pass@1,execute")
    if theirs is not None and abs(theirs - ours["pass_at_1"]) > 1e-9:
        raise RuntimeError(f"{task} {variant.name}: lm-eval pass@1 {theirs} != harness {ours['pass_at_1']}")


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _write_lm_eval_results(path: Path, results: dict) -> None:
    kept = {key: value for key, value in results.items() if key != "samples"}
    path.write_text(json.dumps(kept, indent=2, default=str) + "\n")


def _facts(cfg: EvalConfig, chosen: list[Variant], sandbox: Sandbox, model_dir, device, context, version) -> dict:
    sampled = [v for v in chosen if v.sampled]
    facts = {
        "protocol": cfg.protocol,
        "tasks": ",".join(cfg.tasks),
        "model_dir": str(model_dir),
        "device": device,
        "dtype": inference_dtype(device) if cfg.backend == "hf" else "bfloat16",
        "backend": cfg.backend,
        "batch_size": cfg.batch_size,
        "max_gen_toks": cfg.max_gen_toks or "task default",
        "max_length": cfg.max_length or "per task",
        "context_length": context,
        "n_samples": chosen[0].n,
        "temperatures": ",".join(f"{v.temperature:g}" for v in sampled) or "greedy",
        "top_p": sampled[0].top_p if sampled else "none",
        "ks": ",".join(str(k) for k in chosen[0].ks),
        "limit": cfg.limit or "none",
        "seed": cfg.seed,
        "lm_eval_version": version,
    }
    facts.update({f"sandbox_{key}": value for key, value in sandbox.describe().items()})
    return facts
