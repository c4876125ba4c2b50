"""What every objective is: a config class whose methods tell the harness everything else.

The recipe's `objective:` section validates into a subclass of `ObjectiveConfig`; the same
object then answers every question the harness has about the objective: how long a training
row is, its parameters and training FLOPs (beside the modules they describe), how tables
label it and which claims it takes part in, and, when a model is built, its parameters,
its losses, its per-depth logits, how it drafts and how its tensors are exported.

The methods fall in two groups. Those above the torch line run in recipes, plans and
reports and must not import torch. Those below it receive tensors and modules, and import
torch inside their bodies when they need more than tensor methods. An objective's own
parameters live in the plain `nn.Module` its `build` returns (an `nn.ModuleDict` of the
trunk's building blocks), so that no class of the objective's file has to subclass a torch
type at import time; see this package's docstring for why.

A training row holds `row_length(S)` tokens: S input positions followed by the lookahead.
Depth k (k=1 is the next token) trains position i against token i+k. With a full window
(S + lookahead tokens) every position has all its targets; with `truncate` (S+1 tokens)
later positions lose the targets past the row's end, as in torchtitan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness.model.config import TrunkConfig
    from harness.model.counting import Flops, Footprint, ParamCounts
    from harness.model.decoding import NextTokenPath
    from harness.model.mtp_model import MTPModel
    from harness.model.trunk import Block, Trunk

TargetWindow = Literal["full", "truncate"]
Rope = Any  # (cos, sin) tensors of the positions a call covers

# The claims an objective can take part in (`ObjectiveConfig.claims`), read by the
# comparison's verdicts (harness/report/claims.py) and its choice of baseline.
CLAIMS = {
    "baseline": "a single-token arm that `harness compare` may take as the baseline",
    "late_positions": "blog claim 2: the arm helps late positions of a window more than early ones",
    "independent_heads": "blog claim 4, one side: independent heads on a shared trunk (Meta)",
    "chained_modules": "blog claim 4, other side: modules chained on the main model (DeepSeek)",
}


def kind_of(module_name: str) -> str:
    """An objective's kind is the name of its file: `harness.model.objectives.meta` -> "meta".
    So a copy of a file under another name is another objective, with nothing else to edit."""
    return module_name.rsplit(".", 1)[-1]


@dataclass
class ModelOutput:
    """What one forward pass returns to the training loop.

    loss: the objective's weighted total, the tensor to backpropagate.
    losses: detached mean loss per part: "depth_1" (next token), "depth_2", ... for the
        depths that predict a token, plus any other named part ("top" for TOP's ranking loss).
    n_targets: how many terms each part's mean was taken over (validation weights by it).
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    n_targets: dict[str, int]


class ObjectiveConfig(BaseModel):
    """The base of every objective's config (one level of subclassing, as pydantic needs).

    A subclass sets `kind: Literal[KIND] = KIND` with `KIND = kind_of(__name__)`, its
    fields, `method`, `claims`, and overrides what differs from the single-token defaults
    below: `n_predict`, `params`, `flops` and `forward` at least.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    target_window: TargetWindow = Field(
        default="full",
        description="full: each row holds S + lookahead tokens so all S positions have all their "
        "targets (the blog's point 3); truncate: rows of S+1 tokens, so later positions lose "
        "the targets past the row (as torchtitan does)",
    )

    method: ClassVar[str] = ""  # the method's name in tables and plots: "Meta", "DeepSeek"
    claims: ClassVar[tuple[str, ...]] = ()  # keys of CLAIMS
    # Its modules are DeepSeek-V3 NextN modules (enorm, hnorm, eh_proj, a block, shared_head
    # norm; [embedding; hidden] in, the pre-norm hidden state chained), which transformers'
    # generic MTP support loads (model/export_mtp.py); None: no standard layout exists.
    standard_mtp_layout: ClassVar[str | None] = None
    # Depth k > 1 predicts a token further away from the same input as depth 1, so once
    # anything is learnt its loss exceeds depth 1's: equal depth losses are a sign of
    # collapse (`eval/collapse.py`). False where depth k reads more than depth 1 does.
    deeper_depths_are_harder: ClassVar[bool] = True
    # The fields a config of this kind needs (those without a default), for tests and tools that
    # build one of every registered objective without naming any.
    example: ClassVar[dict[str, Any]] = {}

    # ---- read by recipes, plans and reports: no torch above this line ---------------------

    @property
    def n_predict(self) -> int:
        """Depths that predict a token at each position (t+1 ... t+n), each with its logits."""
        raise NotImplementedError

    @property
    def loss_parts(self) -> list[str]:
        """The keys of `ModelOutput.losses`: "depth_1" .. "depth_n", and any other part."""
        return [depth_key(k) for k in range(1, self.n_predict + 1)]

    @property
    def lookahead(self) -> int:
        """Tokens past position i that its targets reach: a full row is S + lookahead."""
        return self.n_predict

    def row_length(self, seq_len: int) -> int:
        """Tokens per training row for S input positions: S + lookahead when full, else S+1."""
        return seq_len + (self.lookahead if self.target_window == "full" else 1)

    def input_length(self, row_length: int) -> int:
        """S, the input positions of a row of `row_length` tokens (the inverse of row_length)."""
        S = row_length - (self.lookahead if self.target_window == "full" else 1)
        if S < 1:
            need = self.row_length(1)
            raise ValueError(f"a row of {row_length} tokens is too short: this objective needs at least {need}")
        return S

    def targets_per_row(self, seq_len: int) -> int:
        """(position, target) pairs trained per row: S*n when full, fewer when truncated."""
        n = self.n_predict
        if self.target_window == "full":
            return seq_len * n
        return sum(seq_len - k for k in range(n))

    def shared_layers(self, m: TrunkConfig) -> int:
        """How many of the recipe's L layers the trunk keeps (Meta: L - n; others: L)."""
        return m.stp_layers

    def model_problem(self, m: TrunkConfig) -> str | None:
        """Why this objective cannot sit on this trunk (a recipe error), or None."""
        return None

    def stp_layers_for(self, next_token_layers: int) -> int:
        """`model.stp_layers` whose next-token path has this many layers (a pretrained
        checkpoint's num_hidden_layers, `model.init_from`): L for objectives that keep all L."""
        return next_token_layers

    def params(self, m: TrunkConfig) -> ParamCounts:
        raise NotImplementedError

    def next_token_head_params(self, m: TrunkConfig) -> int:
        """The part of `params(m).heads` that lies on the next-token path (Meta: head 1 and the
        final norm), which `train.freeze` freezes with the trunk."""
        return 0

    def trainable_params(self, m: TrunkConfig, freeze: str = "none") -> int:
        """Parameters the optimiser updates under `train.freeze` (model/counting.py: `trains`)."""
        counts = self.params(m)
        if freeze == "none":
            return counts.total
        unembedding = m.vocab_size * m.d_model if freeze == "trunk" and not m.tie_embeddings else 0
        return counts.heads - self.next_token_head_params(m) + unembedding

    def flops(self, m: TrunkConfig, seq_len: int, freeze: str = "none") -> Flops:
        """Training FLOPs (forward + backward) per input position at window length S, with the
        parts `train.freeze` freezes costing what autograd still runs for them (counting.py)."""
        raise NotImplementedError

    def footprint(self, m: TrunkConfig) -> Footprint:
        """What a training step holds beyond the trunk's blocks (`counting.Footprint`), for the
        memory plan: by default one final norm, one unembedding and one cross-entropy."""
        from harness.model.counting import Footprint

        return Footprint()

    @property
    def max_zero_stage(self) -> int:
        """The highest DeepSpeed ZeRO stage this objective trains under (the memory plan never
        suggests a higher one)."""
        return 3

    def label(self) -> str:
        """How tables name this arm's objective: "meta n=2", "deepseek D=1"."""
        return self.kind

    def depth_name(self, k: int) -> str:
        """Depth k (k >= 2) in the acceptance columns of tables."""
        return f"d{k}"

    def export_layout(self, n_trunk_layers: int) -> str:
        """mtp_config.json's sentence on where this objective's tensors went."""
        return "no extra parameters"

    # ---- the model: called with tensors and modules; import torch inside ------------------

    def build(self, m: TrunkConfig) -> nn.Module:
        """A module holding the parameters this objective adds to the trunk (none here)."""
        from torch import nn

        return nn.Module()

    def init_weights(self, module: nn.Module, m: TrunkConfig, generator: torch.Generator) -> None:
        """Initialise `module`'s parameters, after the trunk's, in a fixed order."""

    def init_from_trunk(self, module: nn.Module, trunk: Trunk) -> None:
        """Initialise `module`'s parameters from a pretrained trunk (`model.init_from`), after
        its weights are loaded; what is not set here keeps `init_weights`' draw. The choice,
        with what the papers and implementations do, is in the objective's design note."""

    def forward(self, module: nn.Module, trunk: Trunk, hidden: torch.Tensor, tokens: torch.Tensor, rope: Rope,
                tokens_seen: int = 0) -> ModelOutput:
        """hidden: (B, S, d) trunk output before the final norm; tokens: the row (B, row_length)."""
        raise NotImplementedError

    def depth_logits(self, module: nn.Module, trunk: Trunk, hidden: torch.Tensor, tokens: torch.Tensor,
                     rope: Rope) -> list[torch.Tensor]:
        """Per depth (B, S, V) logits, n_predict of them; depth 1 predicts the next token."""
        return [trunk.logits(hidden)]

    def next_token_blocks(self, module: nn.Module) -> list[Block]:
        """Blocks the next-token path runs after the trunk's layers (Meta: head 1)."""
        return []

    def export_names(self, module: nn.Module, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        """`module`'s state-dict key -> ("model" | "mtp", exported name). "model" keys join the
        Hugging Face Llama directory; "mtp" keys go to mtp_heads.safetensors."""
        return {}

    def drafter(self, model: MTPModel, max_len: int) -> NextTokenPath | None:
        """A decoding path whose `draft` proposes tokens for self-speculative decoding
        (`harness.model.decoding`), or None when the objective cannot draft."""
        return None


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


def next_token_output(loss: torch.Tensor, targets: torch.Tensor) -> ModelOutput:
    """The output of an objective whose only loss is the next token's."""
    return ModelOutput(loss=loss, losses={depth_key(1): loss.detach()}, n_targets={depth_key(1): targets.numel()})
