"""DeepSeek-V3-style MTP (arXiv 2412.19437 Sec. 2.2): D chained modules.
Design note, with the per-depth table and our deviations: deepseek.md.

Module k (k = 1..D) at position i: h'_i = eh_proj([enorm(Emb(t_{i+k})); hnorm(h^{k-1}_i)]),
h^k = TRM_k(h'), logits = OutHead(shared_head.norm(h^k)); it predicts t_{i+k+1}. The
embedding and unembedding are the main model's. Parameter names are those of the released
V3 checkpoint's MTP layer (`model.layers.61.{enorm,hnorm,eh_proj,shared_head.norm}` beside a
normal decoder layer), so exported modules read like V3's.

h^0 is the main model's last hidden state *before* its final norm: V3 Sec. 2.2 says only
"the representation given by the main model", and hnorm normalises it anyway; we follow
torchtitan (`models/deepseek_v3/mtp.py`: "preserve the pre-norm hidden state because MTP
consumes the last decoder-layer output").

Parameters: STP's + D * (enorm d + hnorm d + eh_proj 2 d^2 + block + final norm d).
Training FLOPs per position: (L + D) block passes + D eh_proj (6 * 2 d^2) + (1 + D)
unembeddings.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.model.config import TrunkConfig
from harness.model.counting import (
    Flops,
    Footprint,
    ParamCounts,
    block_flops,
    block_params,
    embedding_params,
    linear_flops,
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


class LambdaStage(BaseModel):
    """lambda takes `value` once `from_tokens` training tokens have been seen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    from_tokens: int = Field(ge=0)
    value: float = Field(ge=0)


class DeepSeekConfig(ObjectiveConfig):
    kind: Literal[KIND] = KIND
    depth: int = Field(ge=1, le=16, description="D chained modules; module k predicts t+k+1")
    mtp_lambda: list[LambdaStage] = Field(
        default=[LambdaStage(from_tokens=0, value=0.3)],
        description="L = L_main + lambda/D * sum_k CE_k. A number is a constant; a list of "
        "{from_tokens, value} is piecewise by tokens seen (V3: 0.3 for the first 10T, then 0.1)",
    )
    method: ClassVar[str] = "DeepSeek"
    claims: ClassVar[tuple[str, ...]] = ("late_positions", "chained_modules")
    standard_mtp_layout: ClassVar[str | None] = "deepseek_v3_nextn"
    # Module k also reads the embedding of token t+k-1: depth k is a next-token problem with
    # one more token of context, and a healthy run's depth 2 can match depth 1 (measured on
    # the laptop study: 4.427 and 4.422 nats at lr 3e-3, with STP at 4.435).
    deeper_depths_are_harder: ClassVar[bool] = False
    example: ClassVar[dict] = {"depth": 1}

    @field_validator("mtp_lambda", mode="before")
    @classmethod
    def _constant_is_one_stage(cls, value):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return [{"from_tokens": 0, "value": value}]
        return value

    @field_validator("mtp_lambda")
    @classmethod
    def _stages_ordered(cls, stages: list[LambdaStage]) -> list[LambdaStage]:
        if not stages or stages[0].from_tokens != 0:
            raise ValueError("the first lambda stage must start at from_tokens 0")
        starts = [s.from_tokens for s in stages]
        if starts != sorted(set(starts)):
            raise ValueError(f"lambda stages must have strictly increasing from_tokens, got {starts}")
        return stages

    @property
    def n_predict(self) -> int:
        """The main head predicts t+1 and module k predicts t+k+1."""
        return self.depth + 1

    def lambda_at(self, tokens_seen: int) -> float:
        return [s.value for s in self.mtp_lambda if s.from_tokens <= tokens_seen][-1]

    def label(self) -> str:
        return f"deepseek D={self.depth}"

    def params(self, m: TrunkConfig) -> ParamCounts:
        d = m.d_model
        module = 2 * d + 2 * d * d + block_params(m) + d  # enorm, hnorm, eh_proj, block, shared_head.norm
        return ParamCounts(embedding=embedding_params(m), trunk=m.stp_layers * block_params(m) + d,
                           heads=self.depth * module)

    def flops(self, m: TrunkConfig, seq_len: int, freeze: str = "none") -> Flops:
        """The main model (forward only when frozen), then D modules that always learn; their
        logits pass the gradient back through the unembedding, frozen or not."""
        D, d = self.depth, m.d_model
        trunk, unembedding = trains(freeze)
        main = (m.stp_layers * block_flops(m, seq_len, weights=trunk, inputs=trunk)
                + unembedding_flops(m, weights=unembedding, inputs=trunk))
        return main + D * (block_flops(m, seq_len) + linear_flops(2 * d * d) + unembedding_flops(m, weights=unembedding))

    def footprint(self, m: TrunkConfig) -> Footprint:
        """D module blocks; norms: the main final norm and each module's enorm, hnorm and
        shared_head.norm; vectors: the unembedding inputs and each module's [emb; h] (2d);
        every depth's logits are held until the forward returns (`depth_logits` lists them)."""
        D = self.depth
        return Footprint(blocks=D, norms=1 + 3 * D, vectors=1 + 3 * D, logits=1 + D, held_logits=1 + D)

    def export_layout(self, n_trunk_layers: int) -> str:
        return (f"model.layers.{n_trunk_layers}+k-1 in mtp_heads.safetensors is MTP module k (V3 names: "
                "enorm, hnorm, eh_proj, shared_head.norm, then a decoder layer); shared_head.head and "
                "embed_tokens are the main model's lm_head and model.embed_tokens (not duplicated)")

    # ---- the model -------------------------------------------------------------------------

    def build(self, m: TrunkConfig):
        """`layers`: D modules after the full L-layer main model, in V3's names."""
        from torch import nn

        from harness.model.trunk import Block, RMSNorm

        def mtp_module() -> nn.ModuleDict:
            d = m.d_model
            return nn.ModuleDict({
                "enorm": RMSNorm(d, eps=m.norm_eps),
                "hnorm": RMSNorm(d, eps=m.norm_eps),
                "eh_proj": nn.Linear(2 * d, d, bias=False),  # M_k in R^{d x 2d}
                "block": Block(m),
                # V3's `shared_head`: the module's own final norm; its `head` is the main
                # model's unembedding (shared, so not duplicated here)
                "shared_head": nn.ModuleDict({"norm": RMSNorm(d, eps=m.norm_eps)}),
            })  # fmt: skip

        return nn.ModuleDict({"layers": nn.ModuleList(mtp_module() for _ in range(self.depth))})

    def init_weights(self, module, m: TrunkConfig, generator) -> None:
        from torch import nn

        from harness.model.trunk import init_block, init_linear

        for layer in module.layers:
            nn.init.ones_(layer.enorm.weight)
            nn.init.ones_(layer.hnorm.weight)
            init_linear(layer.eh_proj.weight, m.init_std, generator)
            init_block(layer.block, m, generator)
            nn.init.ones_(layer.shared_head.norm.weight)

    def init_from_trunk(self, module, trunk) -> None:
        """Post-hoc modules (deepseek.md, "From a pretrained checkpoint"): each block a copy of
        the main model's last layer, shared_head.norm a copy of its final norm; eh_proj keeps
        its random draw and enorm, hnorm their ones."""
        import torch

        with torch.no_grad():
            for layer in module.layers:
                layer.block.load_state_dict(trunk.layers[-1].state_dict())
                layer.shared_head.norm.weight.copy_(trunk.norm.weight)

    def forward(self, module, trunk, hidden, tokens, rope, tokens_seen: int = 0) -> ModelOutput:
        S, D = hidden.shape[1], self.depth
        targets = [depth_targets(tokens, S, k) for k in range(1, D + 2)]
        logits = self.depth_logits(module, trunk, hidden, tokens, rope)
        ces = [depth_cross_entropy(lg, t) for lg, t in zip(logits, targets)]
        loss = ces[0] + (self.lambda_at(tokens_seen) / D) * sum(ces[1:])
        keys = [depth_key(k) for k in range(1, D + 2)]
        return ModelOutput(
            loss=loss,
            losses={key: ce.detach() for key, ce in zip(keys, ces)},
            n_targets={key: t.numel() for key, t in zip(keys, targets)},
        )

    def depth_logits(self, module, trunk, hidden, tokens, rope):
        """Logits of every depth, main first: [(B, S, V)] * (1 + D)."""
        S = hidden.shape[1]
        logits, h = [trunk.logits(hidden)], hidden
        for k, layer in enumerate(module.layers, start=1):
            h = module_step(layer, h, trunk.embed(module_inputs(tokens, S, k)), rope)
            logits.append(trunk.lm_head(layer.shared_head.norm(h)))
        return logits

    def export_names(self, module, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        """Module k becomes `model.layers.{L+k-1}` as in V3 (MTP layers follow the main ones);
        its block's parameters sit directly in that layer, as V3's do."""
        names = {}
        for key in module.state_dict():
            _, k, rest = key.split(".", 2)  # layers.<k>.<param>
            rest = rest.removeprefix("block.")
            names[key] = ("mtp", f"model.layers.{n_trunk_layers + int(k)}.{rest}")
        return names

    def drafter(self, model, max_len: int) -> "DeepSeekPath":
        return DeepSeekPath(model, max_len)


def module_step(layer, h_prev, emb, rope, cache=None):
    """One V3 MTP module: combine h^{k-1} with the embedding of the token k ahead, one block.
    (B, S, d) each -> (B, S, d) = h^k, before shared_head.norm."""
    import torch

    # [emb; h] as in the released code that uses these weights (vLLM deepseek_mtp.py,
    # torchtitan), though the paper writes [h; emb]: a fixed permutation of M's columns.
    x = torch.cat([layer.enorm(emb), layer.hnorm(h_prev)], dim=-1)  # (B, S, 2d)
    return layer.block(layer.eh_proj(x), rope, cache)


def module_inputs(tokens, S: int, k: int):
    """t_{i+k} for the S positions: (B, S). A truncated row lacks the last k-1 of them; those
    positions get token 0 (as torchtitan fills) and have no target, and under the causal mask
    nothing earlier sees them."""
    import torch.nn.functional as F

    ids = tokens[:, k : k + S]
    return F.pad(ids, (0, S - ids.shape[1]), value=0)


class DeepSeekPath(NextTokenPath):
    """The main model verifies; modules 1..D draft in a chain after each commit (V3 Sec. 2.2):
    module k at position i reads h^{k-1}_i and the embedding of token i+k, the token drafted
    just before (module 1: the greedy token itself), and proposes token i+k+1. Module k's
    cache keeps only positions whose token i+k is committed; the positions that read a draft
    are recomputed at the next `draft`."""

    def __init__(self, model, max_len: int):
        import torch

        from harness.model.kv_cache import CachedStack, KVCache

        super().__init__(model, max_len)
        self.modules = list(model.objective.layers)
        self.n_draft = len(self.modules)
        self.stack = CachedStack(self.trunk.layers, self.rope)
        d = model.model_cfg.d_model
        dtype = self.trunk.embed_tokens.weight.dtype
        # h^k of every position computed so far, k = 0 (main) .. D; (1, max_len, d) each
        self.levels = [torch.zeros(1, max_len, d, dtype=dtype, device=self.device) for _ in range(self.n_draft + 1)]
        self.caches = [
            KVCache(1, m.block.self_attn.n_kv_heads, m.block.self_attn.head_dim, max_len, dtype, self.device)
            for m in self.modules
        ]
        self.tokens: list[int] = []  # the committed tokens, one per committed position
        self.block: list[int] = []

    def verify(self, ids: list[int], last_only: bool = False) -> list[int]:
        self.start, self.block = self.stack.length, list(ids)
        h = self.stack(self.trunk.embed(as_ids(ids, self.device)))  # (1, T, d) = h^0
        self.levels[0][:, self.start : self.start + h.shape[1]] = h
        return greedy(self.trunk.logits(h[:, -1:] if last_only else h))

    def commit(self, kept: int) -> None:
        self.stack.truncate(self.start + kept)
        self.tokens.extend(self.block[:kept])

    def draft(self, token: int, count: int) -> list[int]:
        """Module k runs on the positions it has not committed, lo..m-1, reading h^{k-1}
        there and tokens lo+k..m-1+k (committed, then `token`, then earlier drafts)."""
        m, seq, drafts = len(self.tokens), [*self.tokens, token], []
        for k, (module, cache) in enumerate(zip(self.modules[:count], self.caches), start=1):
            lo = cache.length
            rope = (self.rope[0][lo:m], self.rope[1][lo:m])
            emb = self.trunk.embed(as_ids(seq[lo + k : m + k], self.device))  # (1, m-lo, d)
            h = module_step(module, self.levels[k - 1][:, lo:m], emb, rope, cache)  # (1, m-lo, d) = h^k
            self.levels[k][:, lo:m] = h
            drafts.append(greedy(self.trunk.lm_head(module.shared_head.norm(h[:, -1])))[0])
            seq.append(drafts[-1])
            cache.length = max(lo, m - k + 1)  # keep the positions whose token i+k is committed
        return drafts
