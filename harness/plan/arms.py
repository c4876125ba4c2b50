"""The plan of one arm: what a recipe costs (parameters, FLOPs per token, tokens, targets),
from its objective's own counts (`model/counting.py`); what `harness plan` prints and the
plan stage records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from harness.model.counting import Flops, ParamCounts

if TYPE_CHECKING:
    from harness.recipe import Recipe


@dataclass(frozen=True)
class ArmPlan:
    """What one arm costs: the figures `harness plan` prints."""

    name: str
    objective: str  # the kind
    label: str  # how tables name it: "meta n=2", "deepseek D=1"
    n_predict: int
    params: ParamCounts
    trainable_params: int  # what the optimiser updates: all but what `train.freeze` freezes
    flops_per_token: Flops  # training FLOPs, frozen parts at what they still cost
    seq_len: int
    tokens_per_step: int
    steps: int
    targets_per_step: int

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    @property
    def total_flops(self) -> float:
        return self.flops_per_token.total * self.tokens

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(tokens=self.tokens, total_flops=self.total_flops, params_total=self.params.total)
        out["flops_per_token"]["total"] = self.flops_per_token.total
        return out


def plan_arm(name: str, recipe: Recipe) -> ArmPlan:
    obj, S = recipe.objective, recipe.seq_len
    return ArmPlan(
        name=name,
        objective=obj.kind,
        label=obj.label(),
        n_predict=obj.n_predict,
        params=obj.params(recipe.model),
        trainable_params=obj.trainable_params(recipe.model, recipe.train.freeze),
        flops_per_token=_flops(obj, recipe, S),
        seq_len=S,
        tokens_per_step=recipe.tokens_per_step,
        steps=recipe.steps,
        targets_per_step=recipe.train.global_batch_size * obj.targets_per_row(S),
    )


def _flops(obj, recipe: Recipe, seq_len: int) -> Flops:
    """The objective's training FLOPs; asked about freezing only when the recipe freezes, so a
    plug-in objective written before `train.freeze` still plans unfrozen recipes."""
    if recipe.train.freeze == "none":
        return obj.flops(recipe.model, seq_len)
    try:
        return obj.flops(recipe.model, seq_len, freeze=recipe.train.freeze)
    except TypeError:
        raise NotImplementedError(f"objective {obj.kind!r} does not count FLOPs under train.freeze") from None
