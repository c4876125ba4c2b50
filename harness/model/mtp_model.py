"""The trainable model: a trunk plus one objective, the one object the training loop sees.

`build_model(model_cfg, objective_cfg)` composes `Trunk` (embedding, shared layers, shared
final norm and unembedding) with the parameters the objective adds (`objective_cfg.build`:
Meta's heads, DeepSeek's modules, TOP's unembedding), held as `self.objective`. The
objective's config runs them (`objective_cfg.forward`). Everything an objective needs,
including Meta's memory-efficient backward, happens inside `forward`, so a training loop only
calls `loss.backward()` (or `engine.backward(loss)`).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.model.config import TrunkConfig
from harness.model.objectives.base import ModelOutput, ObjectiveConfig
from harness.model.trunk import Trunk


class MTPModel(nn.Module):
    """Trunk + objective. `forward(tokens)` takes a row of `objective_cfg.row_length(S)` tokens."""

    def __init__(self, model_cfg: TrunkConfig, objective_cfg: ObjectiveConfig, checkpointing: bool = False):
        super().__init__()
        self.model_cfg, self.objective_cfg = model_cfg, objective_cfg
        self.trunk = Trunk(model_cfg, objective_cfg.shared_layers(model_cfg), checkpointing)
        self.objective = objective_cfg.build(model_cfg)

    def init_weights(self, generator: torch.Generator) -> None:
        """Trunk first, then the objective's own parameters, each in a fixed order."""
        self.trunk.init_weights(generator)
        self.objective_cfg.init_weights(self.objective, self.model_cfg, generator)

    def _hidden(self, tokens: torch.Tensor):
        S = self.objective_cfg.input_length(tokens.shape[1])
        rope = self.trunk.rope(S)
        return self.trunk(tokens[:, :S], rope), rope  # (B, S, d)

    def forward(self, tokens: torch.Tensor, tokens_seen: int = 0) -> ModelOutput:
        """Losses of one row batch (B, row_length(S)); `tokens_seen` drives scheduled weights."""
        hidden, rope = self._hidden(tokens)
        return self.objective_cfg.forward(self.objective, self.trunk, hidden, tokens, rope, tokens_seen)

    def depth_logits(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Per depth (B, S, V) logits for a row batch; depth 1 is next-token. Positions past
        a truncated row's targets are still computed (DeepSeek's on padded inputs)."""
        hidden, rope = self._hidden(tokens)
        return self.depth_logits_at(hidden, tokens, rope)

    def depth_logits_at(self, hidden: torch.Tensor, tokens: torch.Tensor, rope) -> list[torch.Tensor]:
        """Per depth logits from a trunk output `hidden` (B, T, d) of the row `tokens`."""
        return self.objective_cfg.depth_logits(self.objective, self.trunk, hidden, tokens, rope)

    def next_token_hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """The next-token path (what export writes as a Llama model), before the final norm."""
        rope = self.trunk.rope(tokens.shape[1])
        x = self.trunk(tokens, rope)
        for block in self.objective_cfg.next_token_blocks(self.objective):
            x = block(x, rope)
        return x  # (B, T, d)

    def next_token_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inference: (B, T) plain input ids -> (B, T, V) next-token logits, no targets."""
        return self.trunk.logits(self.next_token_hidden(tokens))

    def next_token_layers(self) -> list[nn.Module]:
        """The blocks of the next-token path in order: export's `model.layers`."""
        return [*self.trunk.layers, *self.objective_cfg.next_token_blocks(self.objective)]

    def freeze(self, mode: str) -> None:
        """`train.freeze`: `trunk` stops the next-token path learning (embedding, its blocks,
        the final norm), `trunk_and_unembedding` the unembedding too, so the next-token model
        is exactly the one it started as. What stays trainable is what the optimiser gets
        (`train/deepspeed_config.param_groups`)."""
        if mode == "none":
            return
        frozen = [self.trunk.embed_tokens, *self.next_token_layers(), self.trunk.norm]
        if mode == "trunk_and_unembedding":
            frozen.append(self.trunk.lm_head)
        elif mode != "trunk":
            raise ValueError(f"unknown train.freeze {mode!r}")
        for module in frozen:
            module.requires_grad_(False)


def build_model(model_cfg: TrunkConfig, objective_cfg: ObjectiveConfig, checkpointing: bool = False) -> MTPModel:
    """A freshly initialised model; deterministic given `torch.manual_seed`. `checkpointing`:
    the trunk's blocks recompute their activations in the backward (`train.activation_checkpointing`).

    One number is drawn from the global generator and seeds a private one that initialises
    every weight in a fixed order (trunk: embedding, unembedding, layers; then the
    objective's). So how modules happen to be constructed does not matter, and equal
    prefixes of the next-token path get equal weights: Meta n=1 starts as STP, and
    DeepSeek's main model starts as the STP model of the same seed.
    """
    seed = int(torch.randint(0, 2**62, (1,)).item())
    model = MTPModel(model_cfg, objective_cfg, checkpointing)
    model.init_weights(torch.Generator().manual_seed(seed))
    return model
