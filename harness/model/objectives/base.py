"""What every objective's configuration shares: the target window."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
