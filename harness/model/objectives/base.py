"""What every objective shares: the target window, the output it returns, and how the
targets of depth k are cut from a row of tokens.

A training row holds `row_length(S)` tokens: S input positions followed by the lookahead.
Depth k (k=1 is the next token) trains position i against token i+k. With a full window
(S+n tokens) every position has all its targets; with `truncate` (S+1 tokens) depth k has
S-k+1 targets, the first ones, as in torchtitan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch

TargetWindow = Literal["full", "truncate"]


class ObjectiveBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target_window: TargetWindow = Field(
        default="full",
        description="full: each row holds S+n tokens so all S positions have all n targets "
        "(the blog's point 3); truncate: rows of S+1 tokens, so depth k loses its last k-1 "
        "targets (as torchtitan does)",
    )

    @property
    def n_predict(self) -> int:
        """Tokens predicted per position (t+1 ... t+n); each objective defines it."""
        raise NotImplementedError

    def row_length(self, seq_len: int) -> int:
        """Tokens per training row for S input positions: S+n with a full window, else S+1."""
        return seq_len + (self.n_predict if self.target_window == "full" else 1)

    def input_length(self, row_length: int) -> int:
        """S, the input positions of a row of `row_length` tokens (the inverse of row_length)."""
        S = row_length - (self.n_predict if self.target_window == "full" else 1)
        if S < 1:
            need = self.row_length(1)
            raise ValueError(f"a row of {row_length} tokens is too short: this objective needs at least {need}")
        return S


@dataclass
class ModelOutput:
    """What one forward pass returns to the training loop.

    loss: the objective's weighted total, the tensor to backpropagate.
    losses: detached mean cross-entropy per depth, "depth_1" (next token), "depth_2", ...
    n_targets: (position, target) pairs each depth's mean was taken over.
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    n_targets: dict[str, int]


def depth_key(k: int) -> str:
    return f"depth_{k}"


def depth_targets(tokens: torch.Tensor, S: int, k: int) -> torch.Tensor:
    """Targets of depth k for the S input positions: tokens[:, i+k] for every i that has one.
    (B, row) -> (B, S) with a full window, (B, S-k+1) when truncated."""
    return tokens[:, k : k + S]


def depth_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions that have a target: logits (B, S, V) against
    targets (B, S') with S' <= S, aligned at position 0 (later positions lack a target)."""
    import torch.nn.functional as F

    n = targets.shape[1]
    return F.cross_entropy(logits[:, :n].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
