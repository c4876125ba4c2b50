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
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from harness.model.objectives.base import ModelOutput, ObjectiveBase, depth_cross_entropy, depth_key, depth_targets
from harness.model.objectives.registry import register_objective
from harness.model.trunk import Block, RMSNorm, Trunk, TrunkConfig, init_block, init_linear


class LambdaStage(BaseModel):
    """lambda takes `value` once `from_tokens` training tokens have been seen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    from_tokens: int = Field(ge=0)
    value: float = Field(ge=0)


class DeepSeekConfig(ObjectiveBase):
    kind: Literal["deepseek"] = "deepseek"
    depth: int = Field(ge=1, le=16, description="D chained modules; module k predicts t+k+1")
    mtp_lambda: list[LambdaStage] = Field(
        default=[LambdaStage(from_tokens=0, value=0.3)],
        description="L = L_main + lambda/D * sum_k CE_k. A number is a constant; a list of "
        "{from_tokens, value} is piecewise by tokens seen (V3: 0.3 for the first 10T, then 0.1)",
    )

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


class SharedHead(nn.Module):
    """V3's `shared_head`: the module's own final norm; its `head` is the main model's
    unembedding (shared, so not duplicated here)."""

    def __init__(self, config: TrunkConfig):
        super().__init__()
        self.norm = RMSNorm(config.d_model, eps=config.norm_eps)


class MTPModule(nn.Module):
    """One V3 MTP module: combine h^{k-1} with the embedding of the token k ahead, one block."""

    def __init__(self, config: TrunkConfig):
        super().__init__()
        d = config.d_model
        self.enorm = RMSNorm(d, eps=config.norm_eps)
        self.hnorm = RMSNorm(d, eps=config.norm_eps)
        self.eh_proj = nn.Linear(2 * d, d, bias=False)  # M_k in R^{d x 2d}
        self.block = Block(config)
        self.shared_head = SharedHead(config)

    def forward(self, h_prev: torch.Tensor, emb: torch.Tensor, rope, cache=None) -> torch.Tensor:
        # [emb; h] as in the released code that uses these weights (vLLM deepseek_mtp.py,
        # torchtitan), though the paper writes [h; emb]: a fixed permutation of M's columns.
        x = torch.cat([self.enorm(emb), self.hnorm(h_prev)], dim=-1)  # (B, S, 2d)
        return self.block(self.eh_proj(x), rope, cache)  # (B, S, d) = h^k, before shared_head.norm


def module_inputs(tokens: torch.Tensor, S: int, k: int) -> torch.Tensor:
    """t_{i+k} for the S positions: (B, S). A truncated row lacks the last k-1 of them; those
    positions get token 0 (as torchtitan fills) and have no target, and under the causal mask
    nothing earlier sees them."""
    ids = tokens[:, k : k + S]
    return F.pad(ids, (0, S - ids.shape[1]), value=0)


@register_objective("deepseek")
class DeepSeekObjective(nn.Module):
    """D chained `MTPModule`s after the full L-layer main model; loss L_main + lambda/D sum CE_k."""

    def __init__(self, config: DeepSeekConfig, model_cfg: TrunkConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(MTPModule(model_cfg) for _ in range(config.depth))
        self._model_cfg = model_cfg

    @staticmethod
    def shared_layers(config: DeepSeekConfig, model_cfg: TrunkConfig) -> int:
        return model_cfg.n_layers

    def init_weights(self, generator: torch.Generator) -> None:
        for module in self.layers:
            nn.init.ones_(module.enorm.weight)
            nn.init.ones_(module.hnorm.weight)
            init_linear(module.eh_proj.weight, self._model_cfg.init_std, generator)
            init_block(module.block, self._model_cfg, generator)
            nn.init.ones_(module.shared_head.norm.weight)

    def _chain(self, trunk: Trunk, hidden: torch.Tensor, tokens: torch.Tensor, rope):
        """Logits of every depth, main first: [(B, S, V)] * (1 + D)."""
        S = hidden.shape[1]
        logits, h = [trunk.logits(hidden)], hidden
        for k, module in enumerate(self.layers, start=1):
            h = module(h, trunk.embed(module_inputs(tokens, S, k)), rope)
            logits.append(trunk.lm_head(module.shared_head.norm(h)))
        return logits

    def forward(self, trunk: Trunk, hidden, tokens, rope, tokens_seen: int = 0) -> ModelOutput:
        S, D = hidden.shape[1], self.config.depth
        targets = [depth_targets(tokens, S, k) for k in range(1, D + 2)]
        ces = [depth_cross_entropy(lg, t) for lg, t in zip(self._chain(trunk, hidden, tokens, rope), targets)]
        lam = self.config.lambda_at(tokens_seen)
        loss = ces[0] + (lam / D) * sum(ces[1:])
        keys = [depth_key(k) for k in range(1, D + 2)]
        return ModelOutput(
            loss=loss,
            losses={key: ce.detach() for key, ce in zip(keys, ces)},
            n_targets={key: t.numel() for key, t in zip(keys, targets)},
        )

    def depth_logits(self, trunk: Trunk, hidden, tokens, rope) -> list[torch.Tensor]:
        return self._chain(trunk, hidden, tokens, rope)

    def next_token_blocks(self) -> list[Block]:
        return []

    def export_names(self, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        """Module k becomes `model.layers.{L+k-1}` as in V3 (MTP layers follow the main ones);
        its block's parameters sit directly in that layer, as V3's do."""
        names = {}
        for key in self.state_dict():
            _, k, rest = key.split(".", 2)  # layers.<k>.<param>
            rest = rest.removeprefix("block.")
            names[key] = ("mtp", f"model.layers.{n_trunk_layers + int(k)}.{rest}")
        return names
