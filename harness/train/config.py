"""The `train:` section of a recipe: budget, batch, optimiser, schedule, precision, ZeRO, seed."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerConfig(_Section):
    name: Literal["adamw"] = "adamw"
    lr: float = Field(default=3e-4, gt=0, description="peak learning rate")
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.1, ge=0, description="applied to 2-D weights only")
    grad_clip: float = Field(default=1.0, ge=0, description="global norm; 0 turns clipping off")


class ScheduleConfig(_Section):
    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(default=0, ge=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="floor as a fraction of peak (Meta S13: 0.03)")


class TrainConfig(_Section):
    steps: int | None = Field(default=None, ge=1, description="optimiser steps; give steps or tokens")
    tokens: int | None = Field(default=None, ge=1, description="training tokens (input positions); rounded up to whole steps")
    global_batch_size: int = Field(ge=1, description="sequences per optimiser step, over all ranks")
    micro_batch_size: int = Field(ge=1, description="sequences per rank per forward")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    freeze: Literal["none", "trunk", "trunk_and_unembedding"] = Field(
        default="none",
        description="what does not learn: `trunk` freezes the next-token path (embedding, its "
        "layers, the final norm) but trains the unembedding, which the MTP heads share; "
        "`trunk_and_unembedding` freezes the whole next-token model, so its logits stay bit for "
        "bit those it started with (post-hoc heads on a model from model.init_from). Frozen "
        "parameters get no optimiser state and cost forward passes only (harness plan counts so)",
    )
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    zero_stage: int = Field(default=0, ge=0, le=3)
    activation_checkpointing: bool = Field(
        default=False,
        description="the trunk's blocks keep only their inputs and recompute the rest in the backward: "
        "block activations fall from L blocks' to one block's, for about a third more block compute "
        "(`harness plan` prints both)",
    )
    seed: int = 0
    deterministic: bool = Field(default=False, description="torch.use_deterministic_algorithms(True)")
    num_threads: int | None = Field(
        default=None, ge=1, description="torch threads per rank; pin it when comparing runs bit for bit"
    )
    log_every: int = Field(default=1, ge=1)
    eval_every: int = Field(default=100, ge=1, description="validation loss every N steps (and at the end)")
    eval_batches: int = Field(default=8, ge=1)
    checkpoint_every: int = Field(default=100, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _one_budget(self) -> "TrainConfig":
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("give exactly one of train.steps and train.tokens")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} must be a multiple of micro_batch_size {self.micro_batch_size}"
            )
        return self

    def total_steps(self, seq_len: int) -> int:
        if self.steps is not None:
            return self.steps
        per_step = self.global_batch_size * seq_len
        return -(-self.tokens // per_step)
