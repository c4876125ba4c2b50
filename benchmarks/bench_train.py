"""Training throughput: tokens/s of each laptop objective through the DeepSpeed engine, and
the DeepSpeed loop against a plain PyTorch loop on the same model, optimiser, schedule and
batches (target: within 5%).

    python benchmarks/bench_train.py [--steps 10] [--threads 2] [--recipe recipes/laptop/base.yaml]

Both loops do the same work per step: global batch 16 in micro-batches, AdamW with
2-D-only weight decay, clipping at 1.0, our LambdaLR. Steps are timed round-robin (one
step of each contender in turn) so that a noisy machine slows all of them alike; the
fastest and the median step of each are reported, after one warm-up step, and the DeepSpeed/plain
ratio is the median of the per-round ratios (the two loops run back to back). On a shared
2-core machine single steps move by 10%; the operator profiles of the two loops are the same
(torch.profiler: same ops, same call counts), so read the ratio with that noise in mind.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402

from benchmarks.machine import load  # noqa: E402
from harness.model.mtp_model import build_model  # noqa: E402
from harness.recipe import load_recipe  # noqa: E402
from harness.train.deepspeed_config import build_engine, param_groups  # noqa: E402
from harness.train.distributed import init_distributed  # noqa: E402
from harness.train.schedule import build_scheduler  # noqa: E402

ARMS = {
    "stp": ["objective.kind=stp"],
    "meta_n2": ["objective.kind=meta", "objective.n=2"],
    "meta_n4": ["objective.kind=meta", "objective.n=4"],
    "deepseek_n2": ["objective.kind=deepseek", "objective.depth=1"],
    "top": ["objective.kind=top", "objective.window=8"],
}


class PlainLoop:
    """The reference: what a hand-written PyTorch training step does."""

    def __init__(self, recipe):
        torch.manual_seed(0)
        self.model = build_model(recipe.model, recipe.objective)
        opt = recipe.train.optimizer
        self.opt = torch.optim.AdamW(param_groups(self.model, opt.weight_decay), lr=opt.lr, betas=opt.betas, eps=opt.eps)
        self.sched = build_scheduler(self.opt, recipe.train.schedule, 1000)
        self.clip, self.micro = opt.grad_clip, recipe.train.micro_batch_size

    def step(self, rows):
        chunks = rows.split(self.micro)
        for mb in chunks:
            (self.model(mb).loss / len(chunks)).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()


class DeepSpeedLoop:
    """What `harness.train.loop` does per step."""

    def __init__(self, recipe):
        torch.manual_seed(0)
        self.engine, _, _ = build_engine(build_model(recipe.model, recipe.objective), recipe.train, 1000, 1)
        self.micro = recipe.train.micro_batch_size

    def step(self, rows):
        for mb in rows.split(self.micro):
            self.engine.backward(self.engine(mb).loss)
            self.engine.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="recipes/laptop/base.yaml")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--micro", type=int, default=None, help="micro-batch size (default: the recipe's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    init_distributed()
    contenders, batches = {}, {}
    for arm, overrides in ARMS.items():
        extra = [f"train.micro_batch_size={args.micro}"] if args.micro else []
        recipe = load_recipe(args.recipe, overrides + extra)
        row = recipe.objective.row_length(recipe.seq_len)
        g = torch.Generator().manual_seed(1)
        batches[arm] = torch.randint(0, recipe.model.vocab_size, (recipe.train.global_batch_size, row), generator=g)
        contenders[f"{arm}/deepspeed"] = (DeepSpeedLoop(recipe), arm, recipe.tokens_per_step)
        if arm == "stp" or arm == "meta_n4":
            contenders[f"{arm}/plain"] = (PlainLoop(recipe), arm, recipe.tokens_per_step)
    times = {name: [] for name in contenders}
    for i in range(args.steps + 1):
        for name, (loop, arm, _) in contenders.items():
            start = time.perf_counter()
            loop.step(batches[arm])
            if i:  # the first step warms allocator and caches
                times[name].append(time.perf_counter() - start)
    best = {name: min(ts) for name, ts in times.items()}
    median = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"threads {args.threads}, {args.steps} timed steps each, recipe {args.recipe}; {load()}")
    print(f"{'contender':24} {'min s':>8} {'median s':>9} {'tokens/s':>10}")
    for name, (_, _, tokens) in contenders.items():
        print(f"{name:24} {best[name]:8.3f} {median[name]:9.3f} {tokens / best[name]:10.0f}")
    for arm in ("stp", "meta_n4"):
        fast = best[f"{arm}/plain"] / best[f"{arm}/deepspeed"]
        # Each round times the two loops back to back, so their ratio within a round shares
        # the machine's state; the median over rounds is the steadiest figure here.
        paired = sorted(p / d for p, d in zip(times[f"{arm}/plain"], times[f"{arm}/deepspeed"]))
        q1, q3 = paired[len(paired) // 4], paired[(3 * len(paired)) // 4]
        print(f"{arm}: DeepSpeed loop throughput = {statistics.median(paired):.3f} x plain PyTorch loop "
              f"(median of {len(paired)} paired rounds, quartiles {q1:.3f}-{q3:.3f}; fastest steps {fast:.3f}; "
              f"target >= 0.95)")



if __name__ == "__main__":
    main()
