"""Peak memory and step time of each objective against STP, and of Meta n=4's naive head
backward against the memory-efficient one, at a laptop size with a 32k vocabulary.

    python benchmarks/bench_model.py                   # defaults below, 2 threads
    python benchmarks/bench_model.py --batch 2 --steps 2 --arms stp,meta4-efficient

A step is zero_grad + forward + backward + AdamW step, fp32, on CPU. After one warm-up step
per arm, --steps rounds time one step of every arm in turn (round-robin, so load from other
processes falls on all arms alike); the ratios use each arm's fastest step, the least
disturbed one, and the median is printed beside it. Peak memory is the model and optimiser state
(parameters, Adam's two moments) plus the largest excursion of live CPU allocations during
one step, read from the profiler's allocation events (torch's CPU allocator reports every
allocation and free while profiling with profile_memory=True); it is measured on a separate,
untimed step because the profiler slows ops down.

The FLOPs column is model/counting.py's training FLOPs per token over STP's: the step-time ratio an
ideal implementation would show. With a 32k vocabulary the unembedding dominates a laptop
model, so Meta n=4 costs ~2-3x STP's FLOPs here, unlike Meta's 1.22x at 0.3B (Table S5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Measure the checkout this script sits in, not whichever harness the venv has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.model.config import TrunkConfig  # noqa: E402
from harness.model.mtp_model import build_model  # noqa: E402
from harness.model.objectives.deepseek import DeepSeekConfig  # noqa: E402
from harness.model.objectives.meta import MetaConfig  # noqa: E402
from harness.model.objectives.stp import StpConfig  # noqa: E402
from harness.model.objectives.top import TopConfig  # noqa: E402

ARMS = {
    "stp": StpConfig(),
    "meta4-naive": MetaConfig(n=4, memory_efficient=False),
    "meta4-efficient": MetaConfig(n=4, memory_efficient=True),
    "meta2-efficient": MetaConfig(n=2, memory_efficient=True),
    "deepseek1": DeepSeekConfig(depth=1),
    "top8": TopConfig(window=8),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=704)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="timed rounds (one step of every arm each)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    return p.parse_args(argv)


def step_excursion(step) -> int:
    """Largest rise of live CPU allocations (bytes) above their level when `step` starts."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
    live = peak = 0
    for _, size in sorted(events):
        live += size
        peak = max(peak, live)
    return peak


def prepare(model_cfg: TrunkConfig, objective_cfg, args):
    """A model, its AdamW and one batch; returns the step function, after one warm-up step
    (which allocates Adam's moments, so the state counted below is complete)."""
    torch.manual_seed(0)
    model = build_model(model_cfg, objective_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, model_cfg.vocab_size, (args.batch, objective_cfg.row_length(args.seq_len)), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).loss.backward()
        opt.step()

    step()
    opt.zero_grad(set_to_none=True)
    state = sum(p.numel() * p.element_size() for p in model.parameters()) * 3  # params + 2 moments
    return step, state


def measure(model_cfg: TrunkConfig, arms: list[str], args) -> dict[str, dict]:
    """Peak memory arm by arm, then timed steps round-robin over the arms, so that load from
    other processes on a shared machine falls on every arm alike."""
    steps, results = {}, {}
    for name in arms:
        steps[name], state = prepare(model_cfg, ARMS[name], args)
        flops = ARMS[name].flops(model_cfg, args.seq_len).total
        results[name] = {"peak": state + step_excursion(steps[name]), "flops": flops, "times": []}
    for _ in range(args.steps):
        for name in arms:
            start = time.perf_counter()
            steps[name]()
            results[name]["times"].append(time.perf_counter() - start)
    for r in results.values():
        r["time"], r["median"] = min(r["times"]), statistics.median(r["times"])
    return results


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model_cfg = TrunkConfig(
        stp_layers=args.layers, d_model=args.d_model, n_heads=args.heads, n_kv_heads=args.kv_heads,
        ffn_hidden=args.ffn, vocab_size=args.vocab, seq_len=args.seq_len,
    )
    arms = args.arms.split(",")
    print(f"model: L={args.layers} d={args.d_model} heads={args.heads}/{args.kv_heads} ffn={args.ffn} "
          f"V={args.vocab}; batch {args.batch} x S={args.seq_len}; fp32, {args.threads} threads, "
          f"torch {torch.__version__}")
    results = measure(model_cfg, arms, args)
    base = results.get("stp") or next(iter(results.values()))
    print(f"\n{'arm':<18}{'min s':>8}{'median s':>10}{'x STP':>8}{'FLOPs x':>9}{'peak MiB':>10}{'x STP':>8}")
    for name, r in results.items():
        print(f"{name:<18}{r['time']:>8.2f}{r['median']:>10.2f}{r['time'] / base['time']:>8.2f}"
              f"{r['flops'] / base['flops']:>9.2f}{r['peak'] / 2**20:>10.0f}{r['peak'] / base['peak']:>8.2f}")
    if {"meta4-naive", "meta4-efficient"} <= results.keys():
        naive, eff = results["meta4-naive"], results["meta4-efficient"]
        print(f"\nmeta n=4 efficient vs naive: peak {eff['peak'] / naive['peak']:.2f}x, "
              f"time {eff['time'] / naive['time']:.2f}x")


if __name__ == "__main__":
    main()
