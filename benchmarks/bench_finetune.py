"""Training throughput with a frozen trunk against the same model unfrozen (issue 26): tokens/s
of post-hoc MTP heads at the laptop shape, beside the ratio `harness plan` predicts from FLOPs.

    python benchmarks/bench_finetune.py [--steps 5] [--threads 1] [--recipe recipes/laptop/base.yaml]

Each arm is the recipe's shape (the laptop model: L=6, d=128, windows of 1024, batch 8) with
one objective, trained through the DeepSpeed engine as `harness.train.loop` does, once with
`train.freeze: none` and once frozen (`trunk_and_unembedding`: only the objective's own
parameters learn; `trunk`: the unembedding too). Weights are a fresh draw: speed does not
depend on their values, so no checkpoint is needed. Meta n=2 uses L=7, the layout it takes on
a 6-layer checkpoint (`MetaConfig.stp_layers_for`). Steps run round-robin (one step of each
contender in turn) so that a loaded machine slows all of them alike; the fastest step after
one warm-up step is reported. The frozen step should cost about the trunk's forward plus the
heads' forward and backward: the FLOPs ratio is that prediction (model/counting.py); time
also goes to what FLOPs do not count (norms, softmax, the optimiser, DeepSpeed's step), which
a frozen step mostly skips too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402

from benchmarks.machine import load  # noqa: E402
from harness.model.mtp_model import build_model  # noqa: E402
from harness.recipe import load_recipe  # noqa: E402
from harness.train.deepspeed_config import build_engine  # noqa: E402
from harness.train.distributed import init_distributed  # noqa: E402

ARMS = {
    "deepseek D=1": ["objective.kind=deepseek", "objective.depth=1"],
    "meta n=2": ["objective.kind=meta", "objective.n=2", "model.stp_layers=7"],
}
FREEZE = ("none", "trunk", "trunk_and_unembedding")


class Loop:
    """One optimiser step as the training loop takes it, with `train.freeze` applied."""

    def __init__(self, recipe):
        torch.manual_seed(0)
        model = build_model(recipe.model, recipe.objective)
        model.freeze(recipe.train.freeze)
        self.engine, _, _ = build_engine(model, recipe.train, 1000, 1)
        self.micro = recipe.train.micro_batch_size

    def step(self, rows):
        for mb in rows.split(self.micro):
            loss = self.engine(mb).loss
            self.engine.backward(loss)
            self.engine.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="recipes/laptop/base.yaml")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    init_distributed()
    contenders = {}
    for arm, overrides in ARMS.items():
        for freeze in FREEZE:
            recipe = load_recipe(args.recipe, overrides + [f"train.freeze={freeze}"])
            g = torch.Generator().manual_seed(1)
            rows = torch.randint(0, recipe.model.vocab_size, (recipe.train.global_batch_size,
                                 recipe.objective.row_length(recipe.seq_len)), generator=g)
            flops = recipe.objective.flops(recipe.model, recipe.seq_len, freeze=freeze).total
            contenders[(arm, freeze)] = (Loop(recipe), rows, recipe.tokens_per_step, flops)
    times = {key: [] for key in contenders}
    for i in range(args.steps + 1):
        for key, (loop, rows, _, _) in contenders.items():
            start = time.perf_counter()
            loop.step(rows)
            if i:  # the first step warms allocator and caches
                times[key].append(time.perf_counter() - start)
    print(f"threads {args.threads}, {args.steps} timed steps each (fastest kept), recipe {args.recipe}; {load()}")
    print(f"{'arm':14} {'train.freeze':22} {'s/step':>7} {'tokens/s':>9} {'x unfrozen':>11} {'FLOPs ratio':>12}")
    for (arm, freeze), (_, _, tokens, flops) in contenders.items():
        best, base = min(times[(arm, freeze)]), min(times[(arm, "none")])
        base_flops = contenders[(arm, "none")][3]
        print(f"{arm:14} {freeze:22} {best:7.3f} {tokens / best:9.0f} {base / best:11.2f} {base_flops / flops:12.2f}")
    print("x unfrozen: the frozen step's throughput over the unfrozen one's; FLOPs ratio: unfrozen training "
          "FLOPs per token over frozen (what harness plan predicts)")


if __name__ == "__main__":
    main()
