"""The training step loop: DeepSpeed engine + MTP objective, validation, checkpoints, signals.

Determinism: the batch at step k is a pure function of (seed, k, global batch) and the loop
draws no random numbers after the model is initialised (no dropout), so resuming from a
checkpoint gives bit-identical per-step losses (fp32, same thread count), without replaying
data or saving RNG states.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.launch.preemption import Preemption
from harness.train import checkpoint
from harness.train.deepspeed_config import build_engine
from harness.train.progress import StepDisplay
from harness.train.throughput import Meter, peak_flops

@dataclass(frozen=True)
class TrainResult:
    status: str  # "finished" or "interrupted"
    step: int
    checkpoint: Path | None
    val: dict[str, float]
    preemption: Preemption | None = None  # set when a signal stopped the run


def seed_everything(seed: int, deterministic: bool, num_threads: int | None) -> None:
    import numpy as np
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def _all_reduce(values: dict[str, float], world_size: int, mean: bool) -> dict[str, float]:
    """Sum (or average) scalars over ranks, in a fixed key order."""
    if world_size == 1:
        return values
    import torch
    import torch.distributed as td

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    td.all_reduce(t)
    return {k: v / world_size if mean else v for k, v in zip(keys, t.tolist())}


def validate(engine, batches, dist, parts: list[str]) -> dict[str, float]:
    """Each loss part (`objective.loss_parts`: per depth, and any other such as TOP's) over
    the fixed validation rows, weighted by its target counts; the rows are dealt out over
    ranks and the sums reduced (every rank lists every part, so the reduction lines up)."""
    import torch

    sums = {f"{side}/{key}": 0.0 for key in parts for side in ("s", "c")}
    engine.eval()
    with torch.no_grad():
        for i, rows in enumerate(batches):
            if i % dist.world_size == dist.rank:
                out = engine(rows)
                for key in parts:
                    sums[f"s/{key}"] += float(out.losses[key]) * out.n_targets[key]
                    sums[f"c/{key}"] += out.n_targets[key]
    engine.train()
    totals = _all_reduce(sums, dist.world_size, mean=False)
    return {f"val/{k}": totals[f"s/{k}"] / totals[f"c/{k}"] for k in parts if totals[f"c/{k}"]}


def train(recipe, run_dir: Path, data, tracker, dist, identity: dict, display_enabled: bool = True) -> TrainResult:
    """Train (or resume) the recipe's model in `run_dir`; returns where it stopped."""
    from harness.data.loader import TokenWindows
    from harness.model.mtp_model import build_model

    cfg, S = recipe.train, recipe.seq_len
    seed_everything(cfg.seed, cfg.deterministic, cfg.num_threads)
    total = recipe.steps
    engine, optimizer, _ = build_engine(build_model(recipe.model, recipe.objective), cfg, total, dist.world_size)
    ckpt_dir = Path(run_dir) / "checkpoints"
    state = checkpoint.load_latest(engine, ckpt_dir, is_main=dist.is_main)
    if state is not None:
        checkpoint.check_identity(state, identity)
    start = state["step"] if state else 0
    tokens_seen = state["tokens_seen"] if state else 0
    targets_seen = state["targets_seen"] if state else 0

    row = recipe.objective.row_length(S)
    windows = dict(seq_len=S, row_length=row, lookahead_reserve=recipe.data.lookahead_reserve)
    loader = TokenWindows(data, split="train", **windows)
    val_rows = TokenWindows(data, split="val", **windows).val_batches(cfg.eval_batches, cfg.micro_batch_size)
    step_tokens = cfg.global_batch_size * S
    step_targets = cfg.global_batch_size * recipe.objective.targets_per_row(S)
    fpt = recipe.objective.flops(recipe.model, S).total
    peak = peak_flops(cfg.precision)
    meter, last_ckpt, val = Meter(), (ckpt_dir / checkpoint.tag_for(start) if state else None), {}
    if tracker is not None and start:
        tracker.note_resume(start)

    def save(step: int) -> Path:
        snapshot = {**identity, "step": step, "tokens_seen": tokens_seen, "targets_seen": targets_seen}
        return checkpoint.save(engine, ckpt_dir, step, snapshot, is_main=dist.is_main, keep=cfg.keep_checkpoints)

    # SIGINT/SIGTERM/SIGUSR1 (Slurm's warning before preemption) are noted by the handler and
    # acted on between steps, once every rank agrees, so all ranks checkpoint the same step.
    with Preemption() as stop, StepDisplay(total, start, display_enabled and dist.is_main) as display:
        if start:
            display.note(f"resumed from {last_ckpt.name} (step {start} of {total})")
        for step in range(start, total):
            lr = optimizer.param_groups[0]["lr"]
            rows = loader.batch(step, cfg.global_batch_size, cfg.seed, dist.rank, dist.world_size)
            sums = defaultdict(float)
            micro = list(rows.split(cfg.micro_batch_size))
            for mb in micro:
                out = engine(mb, tokens_seen=tokens_seen)
                engine.backward(out.loss)
                engine.step()
                sums["loss/total"] += float(out.loss.detach()) / len(micro)
                for key, loss in out.losses.items():
                    sums[f"loss/{key}"] += float(loss) / len(micro)
            tokens_seen += step_tokens
            targets_seen += step_targets
            metrics = _all_reduce(dict(sums), dist.world_size, mean=True)
            metrics.update(lr=lr, tokens_seen=tokens_seen, targets_seen=targets_seen)
            rate = meter.mark(tokens_seen)
            if rate:
                metrics["tokens_per_s"] = rate
                if peak:
                    metrics["mfu"] = fpt * rate / peak
            done = step + 1
            if done % cfg.eval_every == 0 or done == total:
                val = validate(engine, val_rows, dist, recipe.objective.loss_parts)
                metrics.update(val)
            if tracker is not None and dist.is_main and (done % cfg.log_every == 0 or done == total or val):
                tracker.log_metrics(metrics, done)
            display.step(done, metrics)
            stopping = stop.agreed()
            if done % cfg.checkpoint_every == 0 or done == total or stopping:
                last_ckpt = save(done)
            if stopping:
                why = stop.received.name if stop.received else "another rank's signal"
                display.note(f"stopped by {why} after step {done}; checkpoint {last_ckpt}; "
                             "run the same command again to resume")
                return TrainResult("interrupted", done, last_ckpt, val, stop)
    if start >= total and not val:
        val = validate(engine, val_rows, dist, recipe.objective.loss_parts)
    return TrainResult("finished", total, last_ckpt, val)
