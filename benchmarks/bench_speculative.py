"""Benchmark of self-speculative greedy decoding and of the analyses of a harness run.

For each harness run directory given (a trained MTP arm: Meta or DeepSeek), prints
1. the wall time of the whole analysis `harness run` makes in its evaluate stage
   (per-position loss, acceptance per depth, one speculative-vs-greedy comparison) with the
   run's own eval settings;
2. teacher-forced acceptance per depth, and accepted tokens per step and the wall-clock
   speed-up of speculative over plain greedy decoding, both KV-cached at batch 1 (the same
   machinery), over `--repeats` alternating measurements (median, min, max): on a shared
   CPU single timings move a lot, tokens per step do not;
3. for DeepSeek D=1 exports, the same prompts through transformers' own
   `generate(use_mtp=True)` on `export/transformers_mtp/` (harness.eval.analyses.hf_mtp): tokens per
   step, its speed-up over its own plain greedy `generate`, and whether its output is
   identical to plain greedy (transformers' and ours).
The machine load is printed with the figures. Published context (their numbers, other
hardware and scale): Meta Table S2, 4 heads, 7B: 3.05x on code; DeepSeek-V3 Sec. 5.4.3:
85-90% second-token acceptance, 1.8x tokens per second.

    MTP_HARNESS_CACHE=/tmp/demo/cache python benchmarks/bench_speculative.py RUN_DIR [RUN_DIR ...]
    python benchmarks/bench_speculative.py RUN_DIR --repeats 5 --max-new-tokens 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's harness, not an installed one

from benchmarks.machine import load  # noqa: E402


def bench_run(run_dir: Path, args) -> None:
    import torch

    from harness.data.prepare import prepare_data
    from harness.eval.analyses.analyze import analyze, decoding_prompts, held_out_rows, recipe_dir_of
    from harness.eval.analyses.speculative import compare_decoders
    from harness.model.export import load_exported
    from harness.recipe import load_recipe

    recipe = load_recipe(run_dir / "recipe.yaml")
    prepared = prepare_data(recipe.data, vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len,
                            base_dir=recipe_dir_of(run_dir))  # fmt: skip
    model = load_exported(run_dir / "export")
    label, n = recipe.objective.label(), recipe.objective.n_predict
    print(f"\n{run_dir.name}: {label}, {n} tokens per position, {sum(p.numel() for p in model.parameters()):,} "
          f"parameters, S={recipe.seq_len}; {load()}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = analyze(model, prepared, recipe.eval, Path(tmp), seq_len=recipe.seq_len)
        seconds = time.perf_counter() - started
    e = recipe.eval
    print(f"  analysis (eval stage settings: {e.analysis_batches}x{e.analysis_batch_size} rows, "
          f"{e.speculative_prompts} prompts x {e.speculative_max_new_tokens} tokens): {seconds:.1f} s wall, "
          f"{summary['analysis_threads']} thread(s)")  # fmt: skip
    print(f"  per-position loss: first bin {summary['position/loss_first_bin']:.3f}, "
          f"last bin {summary['position/loss_last_bin']:.3f} nats")  # fmt: skip
    for k in range(2, n + 1):
        print(f"  depth {k}: agrees with greedy {summary[f'acceptance/depth_{k}/agree_greedy']:.1%}, "
              f"correct {summary[f'acceptance/depth_{k}/correct']:.1%} (teacher-forced)")  # fmt: skip

    if n == 1:
        print("  no extra depths: nothing drafts, so no speculative decoding (the analyses above are a reference)")
        return
    torch.set_num_threads(args.threads)
    rows = held_out_rows(prepared, e, recipe.seq_len + n)
    prompts = decoding_prompts(rows, args.prompts, min(args.prompt_tokens, recipe.seq_len))
    reports = [compare_decoders(model, prompts, args.max_new_tokens, prepared.eos_id) for _ in range(args.repeats)]
    speedups = [r["speedup"] for r in reports]
    r = reports[0]
    print(f"  decoding {r['prompts']} prompts of {args.prompt_tokens} tokens, {r['new_tokens']} new tokens, "
          f"{args.threads} thread(s), KV cache in both decoders; identical output: "
          f"{all(x['identical'] for x in reports)}")  # fmt: skip
    ms = {key: 1000 * statistics.median(x[key] for x in reports) / r["new_tokens"] for key in ("plain_s", "speculative_s")}
    print(f"  tokens per step {r['tokens_per_step']:.2f} (at most {n}); plain greedy {ms['plain_s']:.2f} ms/token, "
          f"speculative {ms['speculative_s']:.2f} ms/token")  # fmt: skip
    print(f"  speed-up {statistics.median(speedups):.2f}x median of {len(speedups)} "
          f"(min {min(speedups):.2f}x, max {max(speedups):.2f}x); {load()}")  # fmt: skip
    bench_transformers(run_dir / "export", model, prompts, args, prepared.eos_id, r["tokens_per_step"])


def bench_transformers(export_dir: Path, model, prompts, args, eos_id, ours_per_step: float) -> None:
    """transformers' generate(use_mtp=True) on the same prompts, when the export has it."""
    from harness.eval.analyses.hf_mtp import transformers_speculative
    from harness.model.export_mtp import read_info

    info = read_info(export_dir)
    if not info.get("written"):
        print(f"  transformers use_mtp: no export for it ({info.get('reason', 'exported before this existed')})")
        return
    reports = [transformers_speculative(export_dir, model, prompts, args.max_new_tokens, eos_id)
               for _ in range(args.repeats)]  # fmt: skip
    speedups = [x["speedup"] for x in reports]
    print(f"  transformers generate(use_mtp=True), {info['architecture']} with {info['identity_layers']} identity "
          f"layers: tokens per step {reports[0]['tokens_per_step']:.2f} (ours {ours_per_step:.2f}), speed-up over "
          f"its plain greedy {statistics.median(speedups):.2f}x median of {len(speedups)}, output identical to plain "
          f"greedy (transformers' and ours): {all(x['identical'] for x in reports)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="harness run directories (recipe.yaml, export/)")
    parser.add_argument("--prompts", type=int, default=8, help="held-out rows whose first tokens are the prompts")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="speculative-vs-greedy comparisons per run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest at batch 1; docs/MEASURED.md)")
    args = parser.parse_args()
    print("Published (their figures, not ours): Meta 7B, 4 heads, Table S2: 3.05x on code; "
          "DeepSeek-V3 Sec. 5.4.3: 85-90% second-token acceptance, 1.8x tokens/s")
    for run_dir in args.runs:
        bench_run(run_dir, args)


if __name__ == "__main__":
    main()
