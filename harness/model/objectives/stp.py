"""Single-token prediction (STP): the next-token cross-entropy baseline."""

from typing import Literal

from harness.model.objectives.base import ObjectiveBase


class StpConfig(ObjectiveBase):
    kind: Literal["stp"] = "stp"

    @property
    def n_predict(self) -> int:
        """Tokens predicted per position (t+1 only)."""
        return 1
