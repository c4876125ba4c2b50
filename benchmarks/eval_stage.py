"""Evaluate-stage seconds before/after in paired rounds, with tokens/s and time per phase.

Arms, each a full `evaluate_model` run (lm-eval, generation, sandbox) with the recipe's eval
settings on the same model, in alternating order per round so load changes hit all alike:
  before   the stage as it ran until this change: lm-eval's own HFLM, the max_length the
           harness gave it (a harness export claimed max(seq_len, 2048) positions), and the
           torch threads the process had (eval.num_threads was unset: the machine's cores)
  backend  the `hf` backend (harness.eval.benchmarks.hf_backend, per-row stops) with before's prompts
           and threads: what the backend alone changes
  after    the backend with before's prompts and the recipe's eval.num_threads: the stage
           at identical completions (checked against before every round)
  shipped  the stage as it now runs: prompts cut to the trained context per task (only when
           that differs from before's cut; different prompts, so different completions)
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.eval_phases import PHASES, Phases, instrument, instrumented_load
from benchmarks.machine import load

OLD_HUMANEVAL_MAX_GEN_TOKS = 1024  # the rule before: sized lm-eval's max_length for every task
OLD_MIN_POSITIONS = 2048  # what harness exports claimed before, whatever they were trained on


def old_max_length(model: Path, context: int) -> int:
    """The max_length lm-eval got before this change (lmeval.model_max_length on the old export)."""
    if (model / "mtp_config.json").is_file():  # a harness export: it said max(seq_len, 2048)
        context = max(context, OLD_MIN_POSITIONS)
    return context if context > OLD_HUMANEVAL_MAX_GEN_TOKS else context + OLD_HUMANEVAL_MAX_GEN_TOKS


def _loader(arm: str, old_length: int, shipped_load):
    """load_model for one arm (`shipped_load`: the harness's own)."""

    def load_model(model_dir, cfg, *, device, context):
        if arm == "shipped":
            return shipped_load(model_dir, cfg, device=device, context=context)
        if arm in ("backend", "after"):
            cfg = cfg.model_copy(update={"max_length": old_length})
            return shipped_load(model_dir, cfg, device=device, context=context)
        from lm_eval.models.huggingface import HFLM

        return HFLM(pretrained=str(model_dir), device=device, batch_size=cfg.batch_size, dtype="float32",
                    max_length=old_length)  # fmt: skip

    return load_model


def run_arm(arm: str, model: Path, cfg, old_length: int, threads: int) -> dict:
    """One evaluate-stage run of an arm: seconds, phase seconds, counts, completions."""
    import torch

    from harness.eval.benchmarks import evaluate, lmeval

    phases, original = Phases(), lmeval.load_model
    torch.set_num_threads(threads)
    cfg = cfg.model_copy(update={"num_threads": threads})
    with tempfile.TemporaryDirectory() as tmp, instrument(phases):
        lmeval.load_model = phases.timed("load", instrumented_load(_loader(arm, old_length, original), phases))
        try:
            started = time.perf_counter()
            summary = evaluate.evaluate_model(model, cfg, Path(tmp))
            seconds = time.perf_counter() - started
        finally:
            lmeval.load_model = original
        completions = {task: [json.loads(line)["completion"] for line in (Path(tmp) / f"{task}_greedy.jsonl").open()]
                       for task in cfg.tasks}  # fmt: skip
    return {"seconds": seconds, "phases": phases.split(seconds), "counts": dict(phases.counts),
            "completions": completions, "summary": summary}  # fmt: skip


def bench_evaluate_stage(model: Path, recipe: Path, rounds: int, limit: int | None, before_threads: int | None,
                         arms: list[str] | None = None) -> None:  # fmt: skip
    from harness.eval.benchmarks.context import trained_context
    from harness.recipe import load_recipe

    cfg = load_recipe(recipe).eval.model_copy(update={"limit": limit})
    threads = {"before": before_threads or os.cpu_count(), "after": cfg.num_threads or 1}
    threads.update(backend=threads["before"], shipped=threads["after"])
    context = trained_context(model)
    old_length = old_max_length(model, context)
    arms = arms or ["before", "backend", "after"] + (["shipped"] if any(_shipped_differs(cfg, context, old_length)) else [])
    print(f"evaluate stage ({', '.join(cfg.tasks)}, greedy, max_gen_toks {cfg.max_gen_toks}, batch {cfg.batch_size}, "
          f"{limit or 'all'} problems per task) on {model}; trained context {context}, before's max_length "
          f"{old_length}; torch threads {', '.join(f'{a} {threads[a]}' for a in arms)}; {rounds} paired rounds; "
          f"{load()}")  # fmt: skip
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            runs[arm].append(run_arm(arm, model, cfg, old_length, threads[arm]))
        line = ", ".join(f"{arm} {runs[arm][-1]['seconds']:.1f} s" for arm in arms)
        same = [arm for arm in arms if arm != "shipped" and runs[arm][-1]["completions"] == runs[arms[0]][-1]["completions"]]
        print(f"  round {r + 1}: {line}; completions byte-identical to {arms[0]}'s: {', '.join(same)}; {load()}")
    _report(runs, arms)


def _shipped_differs(cfg, context: int, old_length: int):
    from harness.eval.benchmarks.context import prompt_budget

    for task_max in {cfg.max_gen_toks or 1024, cfg.max_gen_toks or 256}:
        yield prompt_budget(context, task_max) != old_length - task_max


def _phase_cell(runs: list[dict], phase: str) -> str:
    seconds = statistics.median(run["phases"][phase] for run in runs)
    share = statistics.median(run["phases"][phase] / run["seconds"] for run in runs)
    return f"{seconds:6.1f} ({share:4.0%})"


def _report(runs: dict[str, list[dict]], arms: list[str]) -> None:
    base = arms[0]
    for arm in arms[1:]:
        ratios = [b["seconds"] / a["seconds"] for b, a in zip(runs[base], runs[arm])]
        print(f"  speed-up {arm} vs {base}: {statistics.median(ratios):.2f}x median of {len(ratios)} paired rounds "
              f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")  # fmt: skip
    print("  time per phase, median seconds (share of the run):")
    print("    " + " ".join(f"{p:>13s}" for p in ("arm", *PHASES)))
    for arm in arms:
        seconds = statistics.median(run["seconds"] for run in runs[arm])
        cells = [_phase_cell(runs[arm], phase) for phase in PHASES]
        print("    " + " ".join(f"{c:>13s}" for c in [f"{arm} {seconds:.0f}s", *cells]))
    for arm in arms:
        c, run = runs[arm][0]["counts"], runs[arm][0]
        gen = sum(run["phases"][p] for p in ("encode", "prefill", "decode step", "stops", "generate", "detokenize"))
        pad = c["prompt pad tokens"] / max(1, c["prompt tokens"] + c["prompt pad tokens"])
        idle = 1 - c["useful tokens"] / max(1, c["row-steps"])
        print(f"  {arm}: {c['batches']} batches, {c['row-steps']} row-steps for {c['useful tokens']} tokens up to the "
              f"stops ({idle:.0%} of row-steps idle after a row stopped), prompt padding {pad:.0%}; "
              f"{c['useful tokens'] / gen:.0f} tokens/s, {c['row-steps'] / gen:.0f} row-steps/s of generation")  # fmt: skip
