"""One-GPU check: training throughput, MFU and peak memory per objective, then 20 HumanEval
problems through the evaluate stage. Run it through benchmarks/gpu_check.sh.

GPU (default): a ~125M-parameter shape (12 layers, d 768, 12 heads, SwiGLU 2048, vocab
32000, context 1024), bf16, ZeRO 1, global batch 16, under DeepSpeed, for `--steps` steps per
arm: STP, Meta n=4 with the memory-efficient head backward, DeepSeek D=1. Tokens are random
(throughput and memory do not depend on the data, and a 32k tokenizer on a real corpus would
take longer than the training). Prints per arm: tokens/s and MFU from the median step after
warm-up, against the device's dense bf16 peak (harness.train.throughput), and peak memory;
then each MTP arm's step time and peak memory over STP's. Then the DeepSeek arm is exported
(with a byte-level BPE trained on the packaged HumanEval/MBPP text) and 20 HumanEval problems
run through `evaluate_model` on the GPU (generation) and the sandbox (execution).
`--cpu`: a tiny shape in fp32 for a few steps and 2 problems, so CI keeps this script working.

    bash benchmarks/gpu_check.sh            # one CUDA GPU, about 3-5 minutes on an H100/H200
    bash benchmarks/gpu_check.sh --cpu      # anywhere, about a minute
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's harness

ARMS = {
    "stp": ["objective.kind=stp"],
    "meta_n4": ["objective.kind=meta", "objective.n=4", "objective.memory_efficient=true"],
    "deepseek_d1": ["objective.kind=deepseek", "objective.depth=1"],
}
GPU_SHAPE = ["model.stp_layers=12", "model.d_model=768", "model.n_heads=12", "model.n_kv_heads=12",
             "model.ffn_hidden=2048", "model.vocab_size=32000", "model.seq_len=1024",
             "train.precision=bf16", "train.zero_stage=1", "train.global_batch_size=16", "train.micro_batch_size=16"]
CPU_SHAPE = ["model.stp_layers=5", "model.d_model=64", "model.n_heads=2", "model.n_kv_heads=1",
             "model.ffn_hidden=128", "model.vocab_size=1024", "model.seq_len=64",
             "train.precision=fp32", "train.zero_stage=0", "train.global_batch_size=4", "train.micro_batch_size=4"]  # fmt: skip


def measure(arm: str, overrides: list[str], steps: int, device: str) -> dict:
    """Median step time, tokens/s, MFU and peak memory of one arm under DeepSpeed."""
    import torch

    from harness.devices import use_tf32
    from harness.model.mtp_model import build_model
    from harness.recipe import load_recipe
    from harness.train.deepspeed_config import build_engine
    from harness.train.throughput import peak_flops

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "laptop" / "base.yaml", overrides + ARMS[arm])
    torch.manual_seed(0)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    engine, _, _ = build_engine(build_model(recipe.model, recipe.objective), recipe.train, steps + 5, 1)
    tf32 = use_tf32(recipe.train.precision, engine.device)  # as the training loop does
    row = recipe.objective.row_length(recipe.seq_len)
    g = torch.Generator().manual_seed(1)
    batch = torch.randint(0, recipe.model.vocab_size, (recipe.train.global_batch_size, row), generator=g).to(engine.device)
    times, loss = [], float("nan")
    for step in range(steps + 3):  # 3 warm-up steps: allocator, kernels, DeepSpeed buffers
        started = time.perf_counter()
        for micro in batch.split(recipe.train.micro_batch_size):
            out = engine(micro)
            engine.backward(out.loss)
            engine.step()
        loss = float(out.loss.detach())  # also waits for the step to finish on the device
        if step >= 3:
            times.append(time.perf_counter() - started)
    step_s = statistics.median(times)
    tokens_per_s = recipe.tokens_per_step / step_s
    peak = peak_flops(recipe.train.precision, engine.device, tf32)
    fpt = recipe.objective.flops(recipe.model, recipe.seq_len).total
    memory = torch.cuda.max_memory_allocated() if device == "cuda" else None
    params = sum(p.numel() for p in engine.module.parameters())
    return {"arm": arm, "params": params, "step_s": step_s, "tokens_per_s": tokens_per_s, "loss": loss,
            "mfu": fpt * tokens_per_s / peak if peak else None, "peak_bytes": memory,
            "model": engine.module, "recipe": recipe}  # fmt: skip


def report(results: list[dict], device: str) -> None:
    from benchmarks.machine import load

    print(f"training ({device}; {load()})")
    print(f"  {'arm':12} {'params':>12} {'step s':>8} {'tokens/s':>10} {'MFU':>7} {'peak mem':>10} {'loss':>7}")
    for r in results:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        mem = f"{r['peak_bytes'] / 2**30:.2f} GiB" if r["peak_bytes"] is not None else "n/a"
        print(f"  {r['arm']:12} {r['params']:12,} {r['step_s']:8.4f} {r['tokens_per_s']:10.0f} {mfu:>7} {mem:>10} "
              f"{r['loss']:7.3f}")  # fmt: skip
    stp = results[0]
    for r in results[1:]:
        memory = f"{r['peak_bytes'] / stp['peak_bytes']:.2f}x" if stp["peak_bytes"] else "n/a (CPU)"
        print(f"  {r['arm']} over stp: step time {r['step_s'] / stp['step_s']:.2f}x, peak memory {memory}")


def evaluate(result: dict, problems: int, max_gen_toks: int, device: str, unsafe: bool) -> None:
    """Export the arm's model and run `problems` HumanEval problems through the evaluate stage."""
    from harness.errors import HarnessError
    from harness.eval.benchmarks.evaluate import evaluate_model
    from harness.eval.benchmarks.random_model import _train_tokenizer
    from harness.eval.config import EvalConfig
    from harness.model.export import export_hf

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _train_tokenizer(result["recipe"].model.vocab_size)
        tokenizer.save_pretrained(f"{tmp}/tokenizer")
        model = result["model"].float().cpu()
        export = export_hf(model, Path(tmp) / "export", Path(tmp) / "tokenizer")
        cfg = EvalConfig(tasks=["humaneval"], limit=problems, max_gen_toks=max_gen_toks, batch_size=problems)
        started = time.perf_counter()
        try:
            summary = evaluate_model(export, cfg, Path(tmp) / "eval", device=device, allow_unsafe=unsafe)
        except HarnessError as exc:
            print(f"evaluate stage: not run: {exc} (pass --unsafe-no-sandbox to run the random model's code unisolated)")
            return
        seconds = time.perf_counter() - started
    print(f"evaluate stage: {problems} HumanEval problems, max_gen_toks {max_gen_toks}, batch {problems} on {device}: "
          f"{seconds:.1f} s, pass@1 {summary['humaneval/pass_at_1']:.3f} (random tokens: 0 expected), "
          f"sandbox {summary['sandbox_kind']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny shape on CPU (what CI runs)")
    parser.add_argument("--steps", type=int, help="timed steps per arm (default: 300 on GPU, 3 on CPU)")
    parser.add_argument("--problems", type=int, help="HumanEval problems (default: 20 on GPU, 2 on CPU)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true", help="run generated code without isolation")
    args = parser.parse_args()
    import torch

    if not args.cpu and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device; run with --cpu for the CPU smoke version")
    device = "cpu" if args.cpu else "cuda"
    from harness.train.distributed import init_distributed

    init_distributed()
    shape = CPU_SHAPE if args.cpu else GPU_SHAPE
    steps = args.steps or (3 if args.cpu else 300)
    started = time.perf_counter()
    results = [measure(arm, shape, steps, device) for arm in ARMS]
    report(results, device)
    problems = args.problems or (2 if args.cpu else 20)
    evaluate(results[-1], problems, 16 if args.cpu else 256, device, args.unsafe_no_sandbox)
    print(f"gpu_check done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
