"""The learning-rate schedule: linear warmup, then cosine (or linear) decay to a floor.

Written as a LambdaLR factor rather than DeepSpeed's WarmupCosineLR because that one warms
up logarithmically by default, has no linear-to-floor variant, and would not be shared by
the plain-PyTorch reference loop that the training benchmark compares against.
"""

from __future__ import annotations

import math

from harness.train.config import ScheduleConfig


def lr_factor(cfg: ScheduleConfig, step: int, total_steps: int) -> float:
    """Multiplier of the peak lr for optimiser step `step` (0-based) of `total_steps`."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.kind == "constant":
        return 1.0
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape


def build_scheduler(optimizer, cfg: ScheduleConfig, total_steps: int):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, total_steps))
