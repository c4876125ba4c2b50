"""Benchmark of the offline evaluation: sandbox throughput and a full greedy HumanEval run.

Prints
1. programs/s of the sandbox on the canonical solutions (HumanEval 164, MBPP test 500),
   beside the same programs run without isolation (rlimits only; trusted code), so the
   ratio is the cost of isolation;
2. the wall time of a full greedy HumanEval run (164 problems, max_gen_toks 1024, batch 8)
   on a random laptop-size Llama (6 layers, d 128, 4 heads, 2 kv heads, ffn 352, vocab 4096)
   or on a trained model directory (`--model`),
   split into model load + generation + execution as lm-eval runs them;
3. with --stage: the evaluate stage (HumanEval + MBPP with the recipe's eval settings) before
   and after this change in paired rounds, completions checked byte-identical, with
   generated tokens/s and the time per phase (benchmarks/eval_stage.py).
The machine load is printed with the figures: on shared CPUs they move a lot.

    python benchmarks/bench_eval.py                 # everything (several minutes)
    python benchmarks/bench_eval.py --skip-generation
    python benchmarks/bench_eval.py --limit 16      # a shorter generation run
    python benchmarks/bench_eval.py --skip-sandbox --model runs/<run>/export   # a trained model
    python benchmarks/bench_eval.py --stage --model runs/<run>/export --rounds 3   # before/after
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's harness, not an installed one

from benchmarks.machine import load  # noqa: E402


def bench_sandbox(workers: int | None) -> None:
    from harness.eval import scoring
    from harness.eval.isolation import launch_for
    from harness.eval.sandbox import Sandbox, SandboxConfig, interpreter_dirs, open_sandbox

    config = SandboxConfig(workers=workers)
    isolated = open_sandbox(config)
    # The baseline runs the same bootstrap as the calling user with rlimits only: fine for
    # canonical solutions, never for model output.
    bare = launch_for("none", list(interpreter_dirs(isolated.python)), uid=config.uid, tmpfs_mb=config.tmpfs_mb, drop=False)
    unisolated = Sandbox(config, bare, isolated.python)
    print(f"sandbox: {isolated.kind}, {isolated.workers} workers, {load()}")
    for task in ("humaneval", "mbpp"):
        rates = {}
        for name, box in (("isolated", isolated), ("rlimits only", unisolated)):
            started = time.monotonic()
            summary, _ = scoring.reference(task, box)
            seconds = time.monotonic() - started
            rates[name] = summary["samples"] / seconds
            print(f"  {task:9s} {name:12s} {summary['passed']}/{summary['samples']} passed in {seconds:6.1f} s: "
                  f"{rates[name]:5.1f} programs/s")  # fmt: skip
        print(f"  {task:9s} isolation costs {rates['rlimits only'] / rates['isolated']:.2f}x in throughput")


def bench_generation(limit: int | None, threads: int, trained: Path | None) -> None:
    from harness.eval.config import EvalConfig
    from harness.eval.evaluate import evaluate_model
    from harness.eval.random_model import LAPTOP_SHAPE, build_random_model

    with tempfile.TemporaryDirectory() as tmp:
        # A random model never emits a stop sequence, so it always generates all 1024 tokens:
        # the worst case. A trained laptop model (--model RUN/export) stops where it stops.
        model = trained or build_random_model(Path(tmp) / "model")
        what = f"trained model {trained}" if trained else f"random Llama {LAPTOP_SHAPE}"
        cfg = EvalConfig(tasks=["humaneval"], max_gen_toks=1024, batch_size=8, limit=limit, num_threads=threads)
        print(f"greedy HumanEval: {what}, max_gen_toks 1024, batch 8, "
              f"torch threads {threads}, {limit or 164} problems; {load()}")  # fmt: skip
        started = time.monotonic()
        summary = evaluate_model(model, cfg, Path(tmp) / "out")
        seconds = time.monotonic() - started
    print(f"  wall time {seconds:.0f} s ({seconds / 60:.1f} min) end to end; "
          f"pass@1 {summary['humaneval/pass_at_1']:.3f} (random and laptop-size models score ~0); {load()}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="HumanEval problems in the generation run (default: all 164)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this size; ENV-NOTES)")
    parser.add_argument("--workers", type=int, help="sandbox workers (default: one per CPU)")
    parser.add_argument("--skip-sandbox", action="store_true")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--model", type=Path, help="an exported model directory (e.g. runs/<run>/export); default: random")
    parser.add_argument("--stage", action="store_true", help="only the paired before/after evaluate-stage benchmark")
    parser.add_argument("--rounds", type=int, default=3, help="--stage: paired rounds")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/base.yaml"), help="--stage: whose eval settings")
    parser.add_argument("--before-threads", type=int, help="--stage: torch threads of the before arm (default: CPUs)")
    parser.add_argument("--arms", help="--stage: a subset of before,backend,after,shipped (before first)")
    args = parser.parse_args()
    if args.stage:
        from benchmarks.eval_stage import bench_evaluate_stage

        if args.model is None:
            parser.error("--stage needs --model (a trained export: a random model never stops)")
        arms = args.arms.split(",") if args.arms else None
        bench_evaluate_stage(args.model, args.recipe, args.rounds, args.limit, args.before_threads, arms)
        return
    if not args.skip_sandbox:
        bench_sandbox(args.workers)
    if not args.skip_generation:
        bench_generation(args.limit, args.threads, args.model)


if __name__ == "__main__":
    main()
