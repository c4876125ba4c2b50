"""Meta-style MTP (Gloeckle et al. 2024): n independent one-layer heads on a shared trunk."""

from typing import Literal

from pydantic import Field, model_validator

from harness.model.objectives.base import ObjectiveBase


class MetaConfig(ObjectiveBase):
    kind: Literal["meta"] = "meta"
    n: int = Field(ge=1, le=16, description="heads; head k predicts t+k (the paper studies 1, 2, 4, 6, 8)")
    loss_weights: list[float] | None = Field(
        default=None, description="weight of each head's cross-entropy; default all 1 (the paper's sum)"
    )
    memory_efficient: bool = Field(
        default=True,
        description="forward+backward one head at a time so peak memory is O(V+d), not O(nV+d) "
        "(Gloeckle et al. Sec. 2)",
    )

    @model_validator(mode="after")
    def _weights_match_heads(self) -> "MetaConfig":
        if self.loss_weights is not None and len(self.loss_weights) != self.n:
            raise ValueError(f"loss_weights has {len(self.loss_weights)} entries but n is {self.n}")
        return self

    @property
    def n_predict(self) -> int:
        return self.n

    @property
    def weights(self) -> list[float]:
        return list(self.loss_weights) if self.loss_weights is not None else [1.0] * self.n
