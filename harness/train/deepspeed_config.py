"""The DeepSpeed engine configuration, built from the recipe's `train:` section."""

from __future__ import annotations

from harness.errors import HarnessError
from harness.train.config import TrainConfig


def gradient_accumulation(cfg: TrainConfig, world_size: int) -> int:
    per_step = cfg.micro_batch_size * world_size
    if cfg.global_batch_size % per_step:
        raise HarnessError(
            f"global_batch_size {cfg.global_batch_size} is not a multiple of micro_batch_size "
            f"{cfg.micro_batch_size} x world size {world_size}",
            fix="change train.micro_batch_size or the number of processes",
        )
    return cfg.global_batch_size // per_step


def deepspeed_config(cfg: TrainConfig, world_size: int, load_universal: bool = False) -> dict:
    """A complete DeepSpeed config dict; the optimiser and schedule come in as objects.
    `load_universal`: the engine will load a universal checkpoint (another world size)."""
    if cfg.precision == "bf16" and cfg.zero_stage == 0:
        # Measured (docs/MEASURED.md): bf16 at stage 0 accumulates gradients in bf16 and drifts.
        raise HarnessError("bf16 needs train.zero_stage >= 1 (stage 0 accumulates gradients in bf16)",
                           fix="set train.zero_stage=1")
    return {
        "train_batch_size": cfg.global_batch_size,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": gradient_accumulation(cfg, world_size),
        "gradient_clipping": cfg.optimizer.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": cfg.precision == "bf16"},
        "fp16": {"enabled": cfg.precision == "fp16", "initial_scale_power": 16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        # We pass torch AdamW as an object; ZeRO refuses a client optimizer without this.
        "zero_allow_untested_optimizer": True,
        "checkpoint": {"load_universal": load_universal},
        **_grad_accumulation_dtype(cfg),
    }


def _grad_accumulation_dtype(cfg: TrainConfig) -> dict:
    """bf16 gradients summed over micro-batches in bf16 lose the small ones (8-bit mantissa),
    the drift we refuse at stage 0. DeepSpeed accumulates in the model's dtype unless told:
    fp32 here makes ZeRO-1 run its BF16_Optimizer (fp32 gradient buffers) and ZeRO-2/3 keep
    the reduced gradient partitions in fp32 (DeepSpeed 0.19.8 engine `_do_optimizer_sanity_check`)."""
    return {"data_types": {"grad_accum_dtype": "fp32"}} if cfg.precision == "bf16" else {}


def param_groups(model, weight_decay: float) -> list[dict]:
    """Decay 2-D weights only (matrices and embeddings), as nanoGPT's configure_optimizers:
    decaying norms' gains pulls them towards zero for no regularising benefit."""
    decay, no_decay = [], []
    for _, p in sorted(model.named_parameters(), key=lambda item: item[0]):
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_engine(model, cfg: TrainConfig, total_steps: int, world_size: int, load_universal: bool = False):
    """deepspeed.initialize with torch AdamW (DeepSpeed's fused Adam JIT-compiles ~3 min on
    CPU) and our LambdaLR schedule; the engine steps both."""
    import deepspeed
    import torch

    from harness.train.schedule import build_scheduler

    opt = cfg.optimizer
    optimizer = torch.optim.AdamW(param_groups(model, opt.weight_decay), lr=opt.lr, betas=opt.betas, eps=opt.eps)
    scheduler = build_scheduler(optimizer, cfg.schedule, total_steps)
    engine, optimizer, _, scheduler = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(cfg, world_size, load_universal)
    )
    return engine, optimizer, scheduler
