"""Evaluate-stage seconds before/after in paired rounds, with tokens/s and time per phase.

Arms, each a full `evaluate_model` run (lm-eval, generation, sandbox) with the recipe's eval
settings on the same model, in alternating order per round so load changes hit all alike:
  before   lm-eval's own HFLM with the max_length the harness gave it before this change
           (a harness export claimed max(seq_len, 2048) positions; lm-eval got that, or that
           plus 1024 when not larger): the path every evaluation took until now
  after    the `hf` backend (harness.eval.hf_backend) with the same prompt cut: its
           completions must be byte-identical to `before`'s (checked every round)
  shipped  the `hf` backend as the evaluate stage now runs it, prompts cut to the trained
           context per task (only when that differs from `after`; different prompts, so
           different completions, by design)
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.eval_phases import PHASES, Phases, instrument
from benchmarks.machine import load

OLD_HUMANEVAL_MAX_GEN_TOKS = 1024  # the rule before: sized lm-eval's max_length for every task
OLD_MIN_POSITIONS = 2048  # what harness exports claimed before, whatever they were trained on


def old_max_length(model: Path, context: int) -> int:
    """The max_length lm-eval got before this change (lmeval.model_max_length on the old export)."""
    if (model / "mtp_config.json").is_file():  # a harness export: it said max(seq_len, 2048)
        context = max(context, OLD_MIN_POSITIONS)
    return context if context > OLD_HUMANEVAL_MAX_GEN_TOKS else context + OLD_HUMANEVAL_MAX_GEN_TOKS


def _loader(arm: str, old_length: int):
    """load_model for one arm (the shipped arm uses the harness's own)."""
    from harness.eval import lmeval

    shipped = lmeval.load_model

    def load_model(model_dir, cfg, *, device, context):
        if arm == "shipped":
            return shipped(model_dir, cfg, device=device, context=context)
        if arm == "after":
            return shipped(model_dir, cfg.model_copy(update={"max_length": old_length}), device=device, context=context)
        from lm_eval.models.huggingface import HFLM

        return HFLM(pretrained=str(model_dir), device=device, batch_size=cfg.batch_size, dtype="float32",
                    max_length=old_length)  # fmt: skip

    return load_model


def run_arm(arm: str, model: Path, cfg, old_length: int) -> dict:
    """One evaluate-stage run of an arm: seconds, phase seconds, counts, completions."""
    from harness.eval import evaluate, lmeval

    phases = Phases()
    original = lmeval.load_model
    with tempfile.TemporaryDirectory() as tmp, instrument(phases):
        lmeval.load_model = phases.timed("load", _loader(arm, old_length))
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


def bench_evaluate_stage(model: Path, recipe: Path, rounds: int, limit: int | None, threads: int) -> None:
    import torch

    from harness.eval.context import trained_context
    from harness.recipe import load_recipe

    torch.set_num_threads(threads)
    cfg = load_recipe(recipe).eval.model_copy(update={"limit": limit, "num_threads": threads})
    context = trained_context(model)
    old_length = old_max_length(model, context)
    arms = ["before", "after"]
    if any(_shipped_differs(cfg, context, old_length)):
        arms.append("shipped")
    print(f"evaluate stage ({', '.join(cfg.tasks)}, greedy, max_gen_toks {cfg.max_gen_toks}, batch {cfg.batch_size}, "
          f"{limit or 'all'} problems per task, {threads} torch thread(s)) on {model}; trained context {context}, "
          f"before/after max_length {old_length}; {rounds} paired rounds; {load()}")  # fmt: skip
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            runs[arm].append(run_arm(arm, model, cfg, old_length))
        line = ", ".join(f"{arm} {runs[arm][-1]['seconds']:.1f} s" for arm in arms)
        same = runs["before"][-1]["completions"] == runs["after"][-1]["completions"]
        print(f"  round {r + 1}: {line}; after/before completions byte-identical: {same}; {load()}")
    _report(runs, arms)


def _shipped_differs(cfg, context: int, old_length: int):
    from harness.eval.context import prompt_budget

    for task_max in {cfg.max_gen_toks or 1024, cfg.max_gen_toks or 256}:
        yield prompt_budget(context, task_max) != old_length - task_max


def _report(runs: dict[str, list[dict]], arms: list[str]) -> None:
    ratios = [b["seconds"] / a["seconds"] for b, a in zip(runs["before"], runs["after"])]
    print(f"  speed-up after vs before: {statistics.median(ratios):.2f}x median of {len(ratios)} paired rounds "
          f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")  # fmt: skip
    if "shipped" in arms:
        shipped = [b["seconds"] / s["seconds"] for b, s in zip(runs["before"], runs["shipped"])]
        print(f"  speed-up shipped (prompts cut to the trained context) vs before: {statistics.median(shipped):.2f}x")
    print("  time per phase, median seconds (share of the run):")
    print("    " + " ".join(f"{p:>13s}" for p in ("arm", *PHASES)))
    for arm in arms:
        seconds = statistics.median(run["seconds"] for run in runs[arm])
        cells = [f"{statistics.median(run['phases'][p] for run in runs[arm]):6.1f} ({statistics.median(run['phases'][p] / run['seconds'] for run in runs[arm]):4.0%})" for p in PHASES]  # noqa: E501
        print("    " + " ".join(f"{c:>13s}" for c in [f"{arm} {seconds:.0f}s", *cells]))
    for arm in arms:
        c, run = runs[arm][0]["counts"], runs[arm][0]
        gen = sum(run["phases"][p] for p in ("encode", "prefill", "decode step", "stops", "generate", "detokenize"))
        pad = c["prompt pad tokens"] / max(1, c["prompt tokens"] + c["prompt pad tokens"])
        idle = 1 - c["useful tokens"] / max(1, c["row-steps"])
        print(f"  {arm}: {c['batches']} batches, {c['row-steps']} row-steps for {c['useful tokens']} tokens up to the "
              f"stops ({idle:.0%} of row-steps idle after a row stopped), prompt padding {pad:.0%}; "
              f"{c['useful tokens'] / gen:.0f} tokens/s, {c['row-steps'] / gen:.0f} row-steps/s of generation")  # fmt: skip
