"""What an arm costs in time: wall-clock hours and GPU-hours of its training at a stated model
FLOPs utilisation (MFU) of a GPU family's dense peak (`train/throughput.GPU_PEAK`).

MFU counts the model's FLOPs (`model/counting.py`), not the hardware's: activation
checkpointing runs each trunk block's forward again in the backward (a third of its training
FLOPs), so at the same hardware efficiency it lowers MFU; the plan adds those FLOPs to the
time instead, so that `--mfu` means what a run without recomputation would reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.model.counting import block_flops
from harness.train.throughput import GPU_PEAK

if TYPE_CHECKING:
    from harness.recipe import Recipe

DEFAULT_GPU = "H100 SXM"
DEFAULT_MFU = 0.40  # a well-tuned dense run at these sizes (PaLM reports 46% at 540B; small models reach less)


@dataclass(frozen=True)
class TimePlan:
    family: str
    gpus: int
    mfu: float
    peak: float  # FLOP/s of one GPU at the recipe's precision
    model_flops: float  # the arm's training FLOPs (`ArmPlan.total_flops`)
    recompute_flops: float  # the forward run again under activation checkpointing

    @property
    def seconds(self) -> float:
        return (self.model_flops + self.recompute_flops) / (self.gpus * self.peak * self.mfu)

    @property
    def gpu_hours(self) -> float:
        return self.seconds * self.gpus / 3600


def peak_of(family: str, precision: str) -> float:
    """Dense peak of one GPU of `family`; fp32 recipes run their products on TF32 tensor cores
    (`harness.devices.use_tf32`)."""
    if family not in GPU_PEAK:
        raise HarnessError(f"unknown GPU family {family!r}", fix=f"use one of: {', '.join(GPU_PEAK)}")
    return GPU_PEAK[family]["tf32" if precision == "fp32" else precision]


def time_plan(recipe: Recipe, model_flops: float, family: str = DEFAULT_GPU, gpus: int = 8,
              mfu: float = DEFAULT_MFU, checkpointing: bool | None = None) -> TimePlan:
    """`checkpointing`: None takes the recipe's `train.activation_checkpointing`."""
    if not 0 < mfu <= 1:
        raise HarnessError(f"--mfu {mfu} is not a fraction of the peak", fix="give it in (0, 1], e.g. --mfu 0.4")
    m, S = recipe.model, recipe.seq_len
    ckpt = recipe.train.activation_checkpointing if checkpointing is None else checkpointing
    # one more forward (a third of forward + backward) of every checkpointed trunk block
    recompute = recipe.objective.shared_layers(m) * block_flops(m, S).total / 3 * recipe.steps * recipe.tokens_per_step
    return TimePlan(family, gpus, mfu, peak_of(family, recipe.train.precision), model_flops,
                    recompute if ckpt else 0.0)
