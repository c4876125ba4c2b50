"""Single-token prediction (STP): the next-token cross-entropy baseline. Design note: stp.md.

The smallest objective, and the template for a new one: a copy of this file under another
name is another objective (its kind is the file's name), which is how the plug-in door is
tested. It adds no parameters; the trunk's final norm and unembedding predict t+1.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from harness.model.config import TrunkConfig
from harness.model.counting import (
    Flops,
    Footprint,
    ParamCounts,
    block_flops,
    block_params,
    embedding_params,
    trains,
    unembedding_flops,
)
from harness.model.objectives.base import (
    ObjectiveConfig,
    depth_cross_entropy,
    depth_targets,
    kind_of,
    next_token_output,
)

KIND = kind_of(__name__)


class StpConfig(ObjectiveConfig):
    kind: Literal[KIND] = KIND
    method: ClassVar[str] = "STP"
    claims: ClassVar[tuple[str, ...]] = ("baseline",)

    @property
    def n_predict(self) -> int:
        """Tokens predicted per position (t+1 only)."""
        return 1

    def params(self, m: TrunkConfig) -> ParamCounts:
        """Embedding, L blocks and the final norm (d)."""
        return ParamCounts(embedding=embedding_params(m), trunk=m.stp_layers * block_params(m) + m.d_model, heads=0)

    def flops(self, m: TrunkConfig, seq_len: int, freeze: str = "none") -> Flops:
        """L block passes and one unembedding (under a frozen trunk: forward only, and the
        unembedding's weight gradient if it learns)."""
        trunk, unembedding = trains(freeze)
        return (m.stp_layers * block_flops(m, seq_len, weights=trunk, inputs=trunk)
                + unembedding_flops(m, weights=unembedding, inputs=trunk))

    def footprint(self, m: TrunkConfig) -> Footprint:
        """The final norm, the unembedding's input and one cross-entropy's log-probabilities."""
        return Footprint(norms=1, vectors=1, logits=1, held_logits=1)

    def forward(self, module, trunk, hidden, tokens, rope, tokens_seen: int = 0):
        targets = depth_targets(tokens, hidden.shape[1], 1)
        return next_token_output(depth_cross_entropy(trunk.logits(hidden), targets), targets)
