"""Single-token prediction (STP): the next-token cross-entropy baseline. Design note: stp.md."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from harness.model.objectives.base import ModelOutput, ObjectiveBase, depth_cross_entropy, depth_key, depth_targets
from harness.model.objectives.registry import register_objective
from harness.model.trunk import Trunk, TrunkConfig


class StpConfig(ObjectiveBase):
    kind: Literal["stp"] = "stp"

    @property
    def n_predict(self) -> int:
        """Tokens predicted per position (t+1 only)."""
        return 1


@register_objective("stp")
class StpObjective(nn.Module):
    """No parameters of its own: the trunk's final norm and unembedding predict t+1."""

    def __init__(self, config: StpConfig, model_cfg: TrunkConfig):
        super().__init__()
        self.config = config

    @staticmethod
    def shared_layers(config: StpConfig, model_cfg: TrunkConfig) -> int:
        return model_cfg.n_layers

    def init_weights(self, generator: torch.Generator) -> None:
        pass

    def forward(self, trunk: Trunk, hidden, tokens, rope, tokens_seen: int = 0) -> ModelOutput:
        targets = depth_targets(tokens, hidden.shape[1], 1)
        loss = depth_cross_entropy(trunk.logits(hidden), targets)
        return ModelOutput(loss=loss, losses={depth_key(1): loss.detach()}, n_targets={depth_key(1): targets.numel()})

    def depth_logits(self, trunk: Trunk, hidden, tokens, rope) -> list[torch.Tensor]:
        return [trunk.logits(hidden)]

    def next_token_blocks(self) -> list:
        return []

    def export_names(self, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        return {}
