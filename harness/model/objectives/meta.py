"""Meta-style MTP (Gloeckle et al. 2024): n independent one-layer heads on a shared trunk.
Design note, with the per-depth table and our deviations: meta.md.

Layout (parameters matched to STP, the paper's rule): the recipe's L layers become a shared
trunk of L-n layers and n one-layer heads; head 1 stands where STP's last layer stands, so the
next-token path has L-n+1 layers. All heads share the trunk's final norm and unembedding.

Parameters: embedding + (L-n) shared blocks + n head blocks + d (one shared final norm),
exactly the STP count. Training FLOPs per position: L block passes (L-n trunk + n heads) and
n unembeddings.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from harness.errors import HarnessError
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
from harness.model.decoding import NextTokenPath, as_ids, greedy
from harness.model.objectives.base import (
    ModelOutput,
    ObjectiveConfig,
    depth_cross_entropy,
    depth_key,
    depth_targets,
    kind_of,
)

KIND = kind_of(__name__)


class MetaConfig(ObjectiveConfig):
    kind: Literal[KIND] = KIND
    n: int = Field(ge=1, le=16, description="heads; head k predicts t+k (the paper studies 1, 2, 4, 6, 8)")
    loss_weights: list[float] | None = Field(
        default=None, description="weight of each head's cross-entropy; default all 1 (the paper's sum)"
    )
    memory_efficient: bool = Field(
        default=True,
        description="forward+backward one head at a time so peak memory is O(V+d), not O(nV+d) "
        "(Gloeckle et al. Sec. 2)",
    )
    method: ClassVar[str] = "Meta"
    claims: ClassVar[tuple[str, ...]] = ("late_positions", "independent_heads")
    example: ClassVar[dict] = {"n": 2}

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

    def label(self) -> str:
        return f"meta n={self.n}"

    def model_problem(self, m: TrunkConfig) -> str | None:
        if self.n > m.stp_layers:
            return (f"objective.n {self.n} heads need at least as many layers, but model.stp_layers "
                    f"is {m.stp_layers} (the trunk keeps L-n layers)")
        return None

    def shared_layers(self, m: TrunkConfig) -> int:
        if problem := self.model_problem(m):
            raise HarnessError(problem, fix="raise model.stp_layers or lower objective.n")
        return m.stp_layers - self.n

    def stp_layers_for(self, next_token_layers: int) -> int:
        """The next-token path is L-n+1 layers (trunk and head 1), so an N-layer checkpoint
        needs L = N+n-1: its last layer becomes head 1 and heads 2..n are added."""
        return next_token_layers + self.n - 1

    def params(self, m: TrunkConfig) -> ParamCounts:
        return ParamCounts(embedding=embedding_params(m), trunk=(m.stp_layers - self.n) * block_params(m),
                           heads=self.n * block_params(m) + m.d_model)

    def next_token_head_params(self, m: TrunkConfig) -> int:
        return block_params(m) + m.d_model  # head 1 and the shared final norm

    def flops(self, m: TrunkConfig, seq_len: int, freeze: str = "none") -> Flops:
        """L block passes (L-n trunk, n heads) and n unembeddings; a frozen trunk and head 1
        run forward only, heads 2..n always learn."""
        trunk, unembedding = trains(freeze)
        extra = self.n - 1
        path = (m.stp_layers - extra) * block_flops(m, seq_len, weights=trunk, inputs=trunk)
        return (path + extra * block_flops(m, seq_len) + unembedding_flops(m, weights=unembedding, inputs=trunk)
                + extra * unembedding_flops(m, weights=unembedding))

    def footprint(self, m: TrunkConfig) -> Footprint:
        """Naive: every head's block, norm and log-probabilities wait for the backward.
        Memory-efficient (`SequentialHeads`): one head at a time inside the forward, which keeps
        the hidden state's gradient (scaled into a second at the backward) and the gradients of
        the heads, final norm and unembedding."""
        if not self.memory_efficient:
            return Footprint(blocks=self.n, norms=self.n, vectors=self.n, logits=self.n, held_logits=1)
        shared = m.vocab_size * m.d_model + m.d_model  # unembedding and final norm
        return Footprint(blocks=0, norms=0, vectors=2, logits=0, held_logits=0, sequential=self.n,
                         early_grads=self.n * block_params(m) + shared)

    @property
    def max_zero_stage(self) -> int:
        return 2 if self.memory_efficient else 3  # see _refuse_partitioned

    def export_layout(self, n_trunk_layers: int) -> str:
        return (f"head 1 is model.layers.{n_trunk_layers} of model.safetensors; heads.<j> (j >= 1) in "
                "mtp_heads.safetensors is head j+1, predicting t+j+1; all share model.norm and lm_head")

    # ---- the model -------------------------------------------------------------------------

    def build(self, m: TrunkConfig):
        """`heads`: n `Block`s; head k (1-based) predicts t+k from the shared trunk output."""
        from torch import nn

        from harness.model.trunk import Block

        return nn.ModuleDict({"heads": nn.ModuleList(Block(m) for _ in range(self.n))})

    def init_weights(self, module, m: TrunkConfig, generator) -> None:
        from harness.model.trunk import init_block

        for head in module.heads:  # head 1 first: it draws what STP's last layer would
            init_block(head, m, generator)

    def init_from_trunk(self, module, trunk) -> None:
        """Heads 2..n start as copies of head 1, the checkpoint's last layer (meta.md, "From a
        pretrained checkpoint")."""
        for head in module.heads[1:]:
            head.load_state_dict(module.heads[0].state_dict())

    def forward(self, module, trunk, hidden, tokens, rope, tokens_seen: int = 0) -> ModelOutput:
        import torch

        S, n, weights = hidden.shape[1], self.n, self.weights
        targets = [depth_targets(tokens, S, k + 1) for k in range(n)]
        head_ce = [partial(_head_ce, trunk, module.heads[k], targets[k], rope) for k in range(n)]
        # Only when a backward will follow: evaluation (no_grad, or eval mode) takes the plain
        # path, which computes the same losses without doing the heads' backward.
        if self.memory_efficient and module.training and torch.is_grad_enabled():
            from harness.model.sequential_heads import SequentialHeads

            params, groups = _params_and_groups(trunk, module.heads)
            _refuse_partitioned(params)
            loss, per_head = SequentialHeads.apply(head_ce, weights, groups, hidden, *params)
        else:
            ces = [ce_of(hidden) for ce_of in head_ce]
            loss = sum(w * ce for w, ce in zip(weights, ces))
            per_head = torch.stack([ce.detach() for ce in ces])
        keys = [depth_key(k + 1) for k in range(n)]
        return ModelOutput(
            loss=loss,
            losses=dict(zip(keys, per_head.unbind())),
            n_targets={key: t.numel() for key, t in zip(keys, targets)},
        )

    def depth_logits(self, module, trunk, hidden, tokens, rope):
        return [trunk.logits(head(hidden, rope)) for head in module.heads]

    def next_token_blocks(self, module):
        return [module.heads[0]]

    def export_names(self, module, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        """Head 1 is the Llama model's last layer; heads 2..n keep their harness names."""
        names = {}
        for key in module.state_dict():
            _, j, rest = key.split(".", 2)  # heads.<j>.<param>
            if j == "0":
                names[key] = ("model", f"model.layers.{n_trunk_layers}.{rest}")
            else:
                names[key] = ("mtp", key)
        return names

    def drafter(self, model, max_len: int) -> "MetaPath":
        return MetaPath(model, max_len)


def _head_ce(trunk, head, targets, rope, hidden):
    return depth_cross_entropy(trunk.logits(head(hidden, rope)), targets)


def _params_and_groups(trunk, heads) -> tuple[list, list[list[int]]]:
    """Trainable parameters the heads touch, and for each head the indices of its own
    plus the shared final norm and unembedding (listed once even when tied)."""
    shared = [p for p in (trunk.norm.weight, trunk.lm_head.weight) if p.requires_grad]
    params, groups = list(shared), []
    for head in heads:
        own = [p for p in head.parameters() if p.requires_grad]
        groups.append(list(range(len(shared))) + list(range(len(params), len(params) + len(own))))
        params.extend(own)
    return params, groups


def _refuse_partitioned(params: list) -> None:
    # DeepSpeed ZeRO-3 partitions parameters (they carry `ds_id`) and gathers them in module
    # hooks around forward and backward; our in-forward backward would see empty shards.
    if any(hasattr(p, "ds_id") for p in params):
        raise NotImplementedError(
            "Meta memory-efficient heads do not support partitioned parameters (DeepSpeed ZeRO stage 3); "
            "use train.zero_stage <= 2 or objective.memory_efficient=false"
        )


class MetaPath(NextTokenPath):
    """Self-speculative decoding (Gloeckle et al. Sec. 3.2, after Stern et al. 2018's blockwise
    parallel decoding): the trunk, then head 1 (the next-token path) and heads 2..n (the
    drafters) on its output. Heads 2..n read the trunk state at the last committed position
    and propose t+2..t+n in parallel; each head is a transformer layer, so it keeps its own
    KV cache and runs on every position `verify` feeds, and the heads' states at the last
    accepted position are the next drafts: a step is one forward."""

    def __init__(self, model, max_len: int):
        from harness.model.kv_cache import CachedStack

        super().__init__(model, max_len)
        heads = model.objective.heads
        self.n_draft = len(heads) - 1
        self.stack = CachedStack(self.trunk.layers, self.rope)
        self.heads = [CachedStack([head], self.rope) for head in heads]
        self.states = []

    def verify(self, ids: list[int], last_only: bool = False) -> list[int]:
        self.start = self.stack.length
        z = self.stack(self.trunk.embed(as_ids(ids, self.device)))  # (1, T, d) trunk output
        self.states = [head(z) for head in self.heads]  # every head fills its cache
        h1 = self.states[0]
        return greedy(self.trunk.logits(h1[:, -1:] if last_only else h1))

    def commit(self, kept: int) -> None:
        import torch

        for stack in (self.stack, *self.heads):
            stack.truncate(self.start + kept)
        self.drafter_states = torch.cat([h[:, kept - 1] for h in self.states[1:]])  # (n-1, d)

    def draft(self, token: int, count: int) -> list[int]:
        # one unembedding for all drafts: at small d it costs several blocks (V x d)
        return greedy(self.trunk.logits(self.drafter_states[:count])) if count else []
