"""The training step loop: DeepSpeed engine + MTP objective, validation, checkpoints, signals.

Determinism: the batch at step k is a pure function of (seed, k, global batch) and the loop
draws no random numbers after the model is initialised (no dropout), so resuming from a
checkpoint gives bit-identical per-step losses (fp32, same thread count), without replaying
data or saving RNG states.
"""

from __future__ import annotations

import math
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import rundir
from harness.devices import to_device, use_tf32
from harness.errors import HarnessError
from harness.launch.preemption import Preemption
from harness.model.counting import mfu
from harness.ranks import group_device
from harness.threads import torch_threads
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


def seed_everything(seed: int, deterministic: bool) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def _reduce(keys: list[str], sums, world_size: int, mean: bool) -> dict[str, float]:
    """Sum (or average) over ranks a float64 vector of sums, one per key in the same order
    on every rank, and read it: the one host sync of a step. NCCL reduces only tensors on
    the group's device (`ranks.group_device`), so the vector goes there first."""
    if world_size > 1:
        import torch.distributed as td

        sums = to_device(sums, group_device())
        td.all_reduce(sums)
        if mean:
            sums = sums / world_size
    return dict(zip(keys, sums.tolist()))


HEADLINE = "val/next_token_loss"


def validate(engine, batches, dist, parts: list[str]) -> dict[str, float]:
    """Each loss part (`objective.loss_parts`: per depth, and any other such as TOP's) over
    the fixed validation rows, weighted by its target counts; the rows are dealt out over
    ranks and the sums reduced (every rank lists every part, so the reduction lines up).
    The sums stay on the device until the end (no host sync per batch)."""
    import torch

    loss_sums, counts = None, [0] * len(parts)  # counts are host integers: no transfer needed
    engine.eval()
    with torch.no_grad():
        for i, rows in enumerate(batches):
            if i % dist.world_size == dist.rank:
                out = engine(to_device(rows, engine.device))
                batch = torch.stack([out.losses[key].detach().double() * out.n_targets[key] for key in parts])
                loss_sums = batch if loss_sums is None else loss_sums + batch
                counts = [c + out.n_targets[key] for c, key in zip(counts, parts)]
    engine.train()
    if loss_sums is None:  # this rank drew no validation rows; it still joins the reduction
        loss_sums = torch.zeros(len(parts), dtype=torch.float64)
    sums = torch.cat([loss_sums, torch.tensor(counts, dtype=torch.float64, device=loss_sums.device)])
    keys = [f"s/{key}" for key in parts] + [f"c/{key}" for key in parts]
    totals = _reduce(keys, sums, dist.world_size, mean=False)
    return {f"val/{k}": totals[f"s/{k}"] / totals[f"c/{k}"] for k in parts if totals[f"c/{k}"]}


def _start_engine(recipe, ckpt_dir: Path, dist, identity: dict, verify: bool, log, init_dir: Path | None):
    """Build the engine and load the newest usable checkpoint (converted when it was saved by
    another number of processes); returns (engine, optimizer, harness state or None). A run
    from a pretrained model (`init_dir`) starts from its weights; its own checkpoints, once
    there, replace them. `train.freeze` is applied before the optimiser sees the parameters."""
    from harness.model.mtp_model import build_model
    from harness.train import universal

    cfg = recipe.train
    while True:
        resume = checkpoint.choose(ckpt_dir, dist.world_size, cfg.zero_stage, is_main=dist.is_main, full=verify, log=log)
        load_dir = ckpt_dir
        if resume is not None and resume.universal:
            load_dir = universal.convert(ckpt_dir, resume, dist.world_size, is_main=dist.is_main, log=log)
        model = build_model(recipe.model, recipe.objective, checkpointing=cfg.activation_checkpointing)
        if init_dir is not None and resume is None:
            from harness.model.pretrained import load_pretrained

            own = load_pretrained(model, init_dir)
            log(f"starting from {init_dir}" + {"checkpoint": " (its MTP parameters too)",
                                                "trunk": " (the objective's parameters initialised from it)"}.get(own, ""))
        model.freeze(cfg.freeze)
        universal_load = resume is not None and resume.universal
        engine, optimizer, _ = build_engine(model, cfg, recipe.steps, dist.world_size, load_universal=universal_load)
        if resume is None:
            return engine, optimizer, None
        try:
            state = checkpoint.load(engine, load_dir, ckpt_dir, resume, is_main=dist.is_main, log=log)
        except checkpoint.Corrupt:
            continue  # renamed *.corrupt; the previous checkpoint is next
        if universal_load:
            universal.remove(ckpt_dir, is_main=dist.is_main)
        checkpoint.check_identity(state, identity)
        return engine, optimizer, state


def train(recipe, run_dir: Path, data, tracker, dist, identity: dict, display_enabled: bool = True,
          verify: bool = False, init_dir: Path | None = None, distilled: Path | None = None) -> TrainResult:
    """Train (or resume) the recipe's model in `run_dir`; returns where it stopped. `init_dir`:
    the pretrained model `model.init_from` names, resolved; `distilled`: the folder of
    self-distilled training rows (`data.self_distill`, made by `train/self_distill.py`)."""
    with torch_threads(recipe.train.num_threads):
        return _train(recipe, run_dir, data, tracker, dist, identity, display_enabled, verify, init_dir, distilled)


def _batches(recipe, data, distilled: Path | None = None):
    """The training windows (distilled rows in place of the corpus's when given) and the fixed
    validation rows, always the corpus's, so validation compares with every other arm."""
    from harness.data.loader import recipe_windows

    cfg = recipe.train
    val = recipe_windows(recipe, data, "val").val_batches(cfg.eval_batches, cfg.micro_batch_size)
    loader = recipe_windows(recipe, data, "train")
    if distilled is not None:
        from harness.data.distilled import DistilledWindows

        loader = DistilledWindows(loader, distilled)
    return loader, val


def _train(recipe, run_dir, data, tracker, dist, identity, display_enabled, verify, init_dir, distilled) -> TrainResult:
    cfg, S, total, ckpt_dir = recipe.train, recipe.seq_len, recipe.steps, Path(run_dir) / rundir.CHECKPOINTS  # S: window
    seed_everything(cfg.seed, cfg.deterministic)
    engine, optimizer, state = _start_engine(recipe, ckpt_dir, dist, identity, verify, _log_on(dist), init_dir)
    start = state["step"] if state else 0
    learns = any(p.requires_grad for p in engine.module.parameters())
    counts = {key: state[key] if state else 0 for key in ("tokens_seen", "targets_seen")}
    loader, val_rows = _batches(recipe, data, distilled)
    step_counts = {"tokens_seen": S, "targets_seen": recipe.objective.targets_per_row(S)}  # per row
    tf32 = use_tf32(cfg.precision, engine.device)
    flops = recipe.objective.flops(recipe.model, S, **({"freeze": cfg.freeze} if cfg.freeze != "none" else {}))
    speed = _Speed(flops.total, peak_flops(cfg.precision, engine.device, tf32), dist.world_size)
    last_ckpt, val = (ckpt_dir / checkpoint.tag_for(start) if state else None), {}
    if tracker is not None:
        tracker.note_resume(start)  # from 0 too: a crash before the first checkpoint logged steps

    def save(step: int) -> Path:  # with what a resume (at any world size) needs to know
        state = {**identity, "step": step, **counts, "world_size": dist.world_size, "zero_stage": cfg.zero_stage}
        return checkpoint.save(engine, ckpt_dir, step, state, is_main=dist.is_main, keep=cfg.keep_checkpoints)

    # SIGINT/SIGTERM/SIGUSR1 are noted by the handler and acted on between steps, once every
    # rank agrees, so all ranks checkpoint the same step.
    display = StepDisplay(total, start, display_enabled and dist.is_main)
    with Preemption() as stop, display:
        if start:
            display.note(f"resumed from {last_ckpt.name} (step {start} of {total})")
        for step in range(start, total):
            lr = optimizer.param_groups[0]["lr"] if optimizer.param_groups else 0.0  # none: nothing learns
            rows = loader.batch(step, cfg.global_batch_size, cfg.seed, dist.rank, dist.world_size)
            metrics = _optimizer_step(engine, rows, cfg.micro_batch_size, counts["tokens_seen"], dist.world_size, learns)
            done = step + 1
            _stop_if_not_finite(metrics, done, last_ckpt)
            for key, per_row in step_counts.items():
                counts[key] += per_row * cfg.global_batch_size
            metrics.update(lr=lr, **counts, **speed.mark(counts["tokens_seen"]))
            validated = done % cfg.eval_every == 0 or done == total
            if validated:
                val = validate(engine, val_rows, dist, recipe.objective.loss_parts)
                # One name every arm shares: `loss/total` weighs in the MTP depths (DeepSeek's
                # lambda), so only the next-token loss compares objectives in MLflow's run table.
                metrics.update(val, **{HEADLINE: val["val/depth_1"]} if "val/depth_1" in val else {})
            if tracker is not None and dist.is_main and (done % cfg.log_every == 0 or done == total or validated):
                tracker.log_metrics(metrics, done)
            display.step(done, metrics)
            stopping = stop.agreed()
            if done % cfg.checkpoint_every == 0 or done == total or stopping:
                last_ckpt = save(done)
                if tracker is not None:
                    tracker.note_checkpoint(done)  # steps up to here are final: MLflow may have them
            if stopping:
                why = stop.received.name if stop.received else "another rank's signal"
                display.note(f"stopped by {why} after step {done}; checkpoint {last_ckpt}; run the same command again")
                return TrainResult("interrupted", done, last_ckpt, val, stop)
    if start >= total and not val:
        val = validate(engine, val_rows, dist, recipe.objective.loss_parts)
    return TrainResult("finished", total, last_ckpt, val)


class _Speed:
    """tokens/s over a sliding window, and MFU: the rate counts every rank's tokens, so it is
    set against every rank's device (world size x one device's peak)."""

    def __init__(self, flops_per_token: float, peak_per_device: float | None, world_size: int):
        self.meter, self.fpt, self.peak, self.world = Meter(), flops_per_token, peak_per_device, world_size

    def mark(self, tokens_seen: int) -> dict[str, float]:
        rate = self.meter.mark(tokens_seen)
        if not rate:
            return {}
        out = {"tokens_per_s": rate}
        if self.peak:
            out["mfu"] = mfu(self.fpt, rate, self.peak * self.world)
        return out


def _log_on(dist):
    """Messages about checkpoints, from rank 0 only (each rank sees the same)."""
    return (lambda text: print(text, file=sys.stderr, flush=True)) if dist.is_main else (lambda text: None)


def _optimizer_step(engine, rows, micro_batch_size: int, tokens_seen: int, world_size: int,
                    learns: bool = True) -> dict[str, float]:
    """One optimizer step over the rank's rows (gradient accumulation over micro-batches);
    the losses averaged over micro-batches and ranks. The rows go to the engine's device
    (DeepSpeed moves the module, never the inputs) and the losses stay there until one read
    per step, so the host never waits for the GPU between micro-batches."""
    import torch

    micro = to_device(rows, engine.device).split(micro_batch_size)
    keys, sums = None, None
    for mb in micro:
        out = engine(mb, tokens_seen=tokens_seen)
        if learns:  # `train.freeze` may leave nothing to learn (the untouched checkpoint): forward only
            engine.backward(out.loss)
            engine.step()
        if keys is None:
            keys = ["loss/total", *(f"loss/{key}" for key in out.losses)]
        # float64, divided before summing: the very arithmetic of float(loss) / n summed in Python.
        step = torch.stack([out.loss.detach().double(), *(v.detach().double() for v in out.losses.values())]) / len(micro)
        sums = step if sums is None else sums + step
    return _reduce(keys, sums, world_size, mean=True)


def _stop_if_not_finite(metrics: dict[str, float], step: int, last_ckpt: Path | None) -> None:
    """A NaN or infinite loss poisons every later step: stop before it is logged or saved."""
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        kept = f"the last good checkpoint, {last_ckpt.name}, is kept" if last_ckpt else "no checkpoint was saved"
        raise HarnessError(
            f"the loss is not finite at step {step} ({', '.join(f'{k}={v}' for k, v in sorted(bad.items()))}); "
            f"training stopped, nothing is exported; {kept}",
            fix="lower train.optimizer.lr, raise train.schedule.warmup_steps or use fp32 (a new run directory)",
        )
