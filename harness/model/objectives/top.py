"""Token-order prediction (TOP; Zuhri, Fuadi and Aji 2025, arXiv 2508.19228): next-token
cross-entropy plus a learning-to-rank loss on one extra unembedding. Design note: top.md.

At position i the TOP head scores every vocabulary entry; its target ranks the tokens that
come up within the next W by how soon they first appear: y_i[v] = W - d for the first d in
0..W-1 with t_{i+1+d} = v (so t_{i+1} scores W), and -inf for tokens not in the window.
The loss is ListNet's (Cao et al. 2007): the cross-entropy between softmax(y_i) and the
softmax of the head's logits, averaged over positions. L = L_NTP + L_TOP, unweighted, as the
authors' training code adds them (flash-linear-attention fork, models/transformer_top).

Parameters: STP's + V d (the TOP unembedding). Training FLOPs per position: STP's + one
unembedding pass (6 V d); building the targets and the softmaxes are not matrix products.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

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
    ModelOutput,
    ObjectiveConfig,
    depth_cross_entropy,
    depth_key,
    depth_targets,
    kind_of,
)

KIND = kind_of(__name__)


class TopConfig(ObjectiveConfig):
    kind: Literal[KIND] = KIND
    window: int = Field(
        default=8, ge=1, le=4096,
        description="W, how many upcoming tokens each position ranks (t+1 .. t+W). A full "
        "target window needs data.lookahead_reserve >= W; 8 is that reserve's default, so the "
        "laptop study's arms keep identical windows (the authors' 340M config uses 4096)",
    )  # fmt: skip
    method: ClassVar[str] = "TOP"
    claims: ClassVar[tuple[str, ...]] = ("late_positions",)

    @property
    def n_predict(self) -> int:
        """Only the next token is predicted as a token; the ranking names no depth."""
        return 1

    @property
    def lookahead(self) -> int:
        return self.window

    @property
    def loss_parts(self) -> list[str]:
        return [depth_key(1), "top"]

    def targets_per_row(self, seq_len: int) -> int:
        """S next-token targets, plus the upcoming tokens each position ranks: W each when
        full, min(W, S - i) at position i when truncated."""
        if self.target_window == "full":
            return seq_len + seq_len * self.window
        return seq_len + sum(min(self.window, seq_len - i) for i in range(seq_len))

    def label(self) -> str:
        return f"top W={self.window}"

    def params(self, m: TrunkConfig) -> ParamCounts:
        return ParamCounts(embedding=embedding_params(m), trunk=m.stp_layers * block_params(m) + m.d_model,
                           heads=m.vocab_size * m.d_model)

    def flops(self, m: TrunkConfig, seq_len: int, freeze: str = "none") -> Flops:
        trunk, unembedding = trains(freeze)
        return (m.stp_layers * block_flops(m, seq_len, weights=trunk, inputs=trunk)
                + unembedding_flops(m, weights=unembedding, inputs=trunk) + unembedding_flops(m, inputs=trunk))

    def footprint(self, m: TrunkConfig) -> Footprint:
        """Saved: the next-token log-probabilities, the target distribution softmax(y) and the
        TOP head's log-probabilities; held until the loss: the proximity scores, the TOP
        logits and their product with the target (each (S, V))."""
        return Footprint(norms=1, vectors=1, logits=3, held_logits=3)

    def export_layout(self, n_trunk_layers: int) -> str:
        return ("top_head.weight in mtp_heads.safetensors is the TOP unembedding (V x d), applied to "
                "model.norm's output; next-token inference does not use it")

    # ---- the model -------------------------------------------------------------------------

    def build(self, m: TrunkConfig):
        from torch import nn

        return nn.ModuleDict({"top_head": nn.Linear(m.d_model, m.vocab_size, bias=False)})

    def init_weights(self, module, m: TrunkConfig, generator) -> None:
        from harness.model.trunk import init_linear

        init_linear(module.top_head.weight, m.init_std, generator)  # as the unembedding

    def forward(self, module, trunk, hidden, tokens, rope, tokens_seen: int = 0) -> ModelOutput:
        S = hidden.shape[1]
        normed = trunk.norm(hidden)  # (B, S, d): both heads read the final norm's output
        targets = depth_targets(tokens, S, 1)
        ntp = depth_cross_entropy(trunk.lm_head(normed), targets)
        scores = proximity_scores(tokens, S, self.window, trunk.config.vocab_size)  # (B, S, V)
        top = listnet_loss(module.top_head(normed), scores)
        return ModelOutput(
            loss=ntp + top,
            losses={depth_key(1): ntp.detach(), "top": top.detach()},
            n_targets={depth_key(1): targets.numel(), "top": scores.shape[0] * S},
        )

    def init_from_trunk(self, module, trunk) -> None:
        """From a pretrained model the TOP head starts as its unembedding, whose scores already
        rank t+1 first (top.md, "From a pretrained checkpoint")."""
        import torch

        with torch.no_grad():
            module.top_head.weight.copy_(trunk.lm_head.weight)

    def export_names(self, module, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        return {key: ("mtp", key) for key in module.state_dict()}


def proximity_scores(tokens, S: int, window: int, vocab: int):
    """TOP targets (B, S, V): W - d where token i+1+d is the first occurrence of v within
    the window (d = 0..W-1), -inf for tokens outside it. A truncated row cuts the window
    at its end: position i then ranks only the tokens the row still has."""
    import torch

    scores = torch.full((tokens.shape[0], S, vocab), float("-inf"), device=tokens.device)
    for d in reversed(range(window)):  # farthest first: a nearer occurrence overwrites it
        ids = tokens[:, 1 + d : 1 + d + S]  # (B, S'), S' <= S: t_{i+1+d} where the row has it
        if ids.shape[1]:
            scores[:, : ids.shape[1]].scatter_(2, ids.unsqueeze(-1), float(window - d))
    return scores


def listnet_loss(logits, scores):
    """ListNet (Cao et al. 2007, top-one probabilities): mean over positions of the
    cross-entropy from softmax(scores) to softmax(logits). Every position ranks at least
    t_{i+1}, so no target row is all -inf."""
    import torch.nn.functional as F

    target = F.softmax(scores, dim=-1)  # zero outside the window
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()
