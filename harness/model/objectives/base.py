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
