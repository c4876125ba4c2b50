"""Meta-style MTP (Gloeckle et al. 2024): n independent one-layer heads on a shared trunk.
Design note, with the per-depth table and our deviations: meta.md.

Layout (parameters matched to STP, the paper's rule): the recipe's L layers become a shared
trunk of L-n layers and n one-layer heads; head 1 stands where STP's last layer stands, so the
next-token path has L-n+1 layers. All heads share the trunk's final norm and unembedding.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from harness.errors import HarnessError
from harness.model.objectives.base import ModelOutput, ObjectiveBase, depth_cross_entropy, depth_key, depth_targets
from harness.model.objectives.registry import register_objective
from harness.model.trunk import Block, Trunk, TrunkConfig, init_block


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


class SequentialHeads(torch.autograd.Function):
    """Gloeckle et al. Sec. 2 / Fig. 2: the heads' forward *and* backward run one at a time
    inside this forward, so only one head's logits (B, S, V) are alive at once.

    Inputs are the trunk output (detached inside) and every head parameter, explicitly: the
    gradients computed here come back out of `backward` through autograd, so they reach the
    parameters by ordinary accumulation (AccumulateGrad), where DeepSpeed's ZeRO hooks and
    loss scaling see them. The trunk's backward then runs once, from the summed gradient.
    """

    @staticmethod
    def forward(ctx, head_ce: list[Callable], weights: list[float], groups: list[list[int]], hidden, *params):
        grad_hidden = torch.zeros_like(hidden)
        grad_params: list[torch.Tensor | None] = [None] * len(params)
        total = hidden.new_zeros((), dtype=torch.float32)
        ces = []
        for ce_of, weight, group in zip(head_ce, weights, groups):
            with torch.enable_grad():
                h = hidden.detach().requires_grad_()
                # A view, so the heads see a non-leaf: module trackers (FlopCounterMode's)
                # hook module inputs, and autograd.grad refuses such hooks on leaves.
                ce = ce_of(h.view_as(h))
                loss = weight * ce
                grads = torch.autograd.grad(loss, [h, *(params[i] for i in group)])
            grad_hidden += grads[0]
            for i, g in zip(group, grads[1:]):
                grad_params[i] = g if grad_params[i] is None else grad_params[i] + g
            total = total + loss.detach()
            ces.append(ce.detach())
        ctx.save_for_backward(grad_hidden, *grad_params)
        per_head = torch.stack(ces)
        ctx.mark_non_differentiable(per_head)
        return total, per_head

    @staticmethod
    def backward(ctx, grad_total, _grad_per_head):
        grad_hidden, *grad_params = ctx.saved_tensors
        scaled = [None if g is None else g * grad_total for g in grad_params]
        return None, None, None, grad_hidden * grad_total, *scaled


def _refuse_partitioned(params: list[nn.Parameter]) -> None:
    # DeepSpeed ZeRO-3 partitions parameters (they carry `ds_id`) and gathers them in module
    # hooks around forward and backward; our in-forward backward would see empty shards.
    if any(hasattr(p, "ds_id") for p in params):
        raise NotImplementedError(
            "Meta memory-efficient heads do not support partitioned parameters (DeepSpeed ZeRO stage 3); "
            "use train.zero_stage <= 2 or objective.memory_efficient=false"
        )


@register_objective("meta")
class MetaObjective(nn.Module):
    """n heads, each one `Block`; head k (1-based) predicts t+k from the shared trunk output."""

    def __init__(self, config: MetaConfig, model_cfg: TrunkConfig):
        super().__init__()
        self.config = config
        self.heads = nn.ModuleList(Block(model_cfg) for _ in range(config.n))
        self._model_cfg = model_cfg

    @staticmethod
    def shared_layers(config: MetaConfig, model_cfg: TrunkConfig) -> int:
        if config.n > model_cfg.n_layers:
            raise HarnessError(
                f"Meta with n={config.n} heads needs model.n_layers >= n, got {model_cfg.n_layers}",
                fix="raise model.n_layers or lower objective.n (the trunk keeps L-n layers)",
            )
        return model_cfg.n_layers - config.n

    def init_weights(self, generator: torch.Generator) -> None:
        for head in self.heads:  # head 1 first: it draws what STP's last layer would
            init_block(head, self._model_cfg, generator)

    def _head_ce(self, trunk: Trunk, k: int, targets: torch.Tensor, rope, hidden: torch.Tensor) -> torch.Tensor:
        return depth_cross_entropy(trunk.logits(self.heads[k](hidden, rope)), targets)

    def forward(self, trunk: Trunk, hidden, tokens, rope, tokens_seen: int = 0) -> ModelOutput:
        S, n, weights = hidden.shape[1], self.config.n, self.config.weights
        targets = [depth_targets(tokens, S, k + 1) for k in range(n)]
        head_ce = [partial(self._head_ce, trunk, k, targets[k], rope) for k in range(n)]
        # Only when a backward will follow: evaluation (no_grad, or eval mode) takes the plain
        # path, which computes the same losses without doing the heads' backward.
        if self.config.memory_efficient and self.training and torch.is_grad_enabled():
            params, groups = self._params_and_groups(trunk)
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

    def _params_and_groups(self, trunk: Trunk) -> tuple[list[nn.Parameter], list[list[int]]]:
        """Trainable parameters the heads touch, and for each head the indices of its own
        plus the shared final norm and unembedding (listed once even when tied)."""
        shared = [p for p in (trunk.norm.weight, trunk.lm_head.weight) if p.requires_grad]
        params, groups = list(shared), []
        for head in self.heads:
            own = [p for p in head.parameters() if p.requires_grad]
            groups.append(list(range(len(shared))) + list(range(len(params), len(params) + len(own))))
            params.extend(own)
        return params, groups

    def depth_logits(self, trunk: Trunk, hidden, tokens, rope) -> list[torch.Tensor]:
        return [trunk.logits(head(hidden, rope)) for head in self.heads]

    def next_token_blocks(self) -> list[Block]:
        return [self.heads[0]]

    def export_names(self, n_trunk_layers: int) -> dict[str, tuple[str, str]]:
        """Head 1 is the Llama model's last layer; heads 2..n keep their harness names."""
        names = {}
        for key in self.state_dict():
            _, j, rest = key.split(".", 2)  # heads.<j>.<param>
            if j == "0":
                names[key] = ("model", f"model.layers.{n_trunk_layers}.{rest}")
            else:
                names[key] = ("mtp", key)
        return names
