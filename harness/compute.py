"""Compute accounting: the shared pieces of the parameter and FLOPs formulas, the plan of
one arm, and the matched-compute solver that a study must pass before it spends any compute.

Each objective states its own totals next to its modules (`params` and `flops` in
`harness/model/objectives/<kind>.py`), built from the pieces here; tests check every one
against the real modules (parameter counts exact, FLOPs equal to torch's FlopCounterMode).

Parameters (no biases anywhere; d = d_model, f = ffn_hidden, V = vocab, h_kv = n_kv_heads,
hd = head_dim, L = model.stp_layers):
    block      = 2 d^2 + 2 d h_kv hd   (Wq, Wo; Wk, Wv)   + 3 d f (SwiGLU)   + 2 d (norms)
    embedding  = V d, plus V d for the unembedding unless tied

Training FLOPs per input position (forward + backward = 3 x forward, 2 FLOPs per
multiply-add; only matrix products are counted, as `torch.utils.flop_counter` does; norms,
softmax and activations are under 1% at any size we run):
    linear     6 * (weights of the matrices) per pass
    attention  12 * S * d per block pass (QK^T and AV over the full S x S square: the flop
               counter and PaLM's 6N + 12 L H Q T formula ignore the causal mask, and so do we)
    unembed    6 * V * d per output-head pass
Every head runs at all S positions (a row of S+n tokens), so counts do not depend on
`target_window`; truncation only masks targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.model.config import TrunkConfig
    from harness.recipe import Recipe


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by role. `trunk` is the shared path, `heads` what the objective adds."""

    embedding: int
    trunk: int
    heads: int

    @property
    def total(self) -> int:
        return self.embedding + self.trunk + self.heads

    @property
    def non_embedding(self) -> int:
        return self.trunk + self.heads


@dataclass(frozen=True)
class Flops:
    """Training FLOPs per input position, forward + backward, by where they are spent."""

    linear: float
    attention: float
    unembedding: float

    @property
    def total(self) -> float:
        return self.linear + self.attention + self.unembedding

    def __add__(self, other: "Flops") -> "Flops":
        return Flops(self.linear + other.linear, self.attention + other.attention, self.unembedding + other.unembedding)

    def __rmul__(self, passes: int) -> "Flops":
        """`k * flops`: k passes of the same computation."""
        return Flops(passes * self.linear, passes * self.attention, passes * self.unembedding)


def block_matrix_params(m: TrunkConfig) -> int:
    d = m.d_model
    return 2 * d * d + 2 * d * m.n_kv_heads * m.head_dim + 3 * d * m.ffn_hidden


def block_params(m: TrunkConfig) -> int:
    return block_matrix_params(m) + 2 * m.d_model


def embedding_params(m: TrunkConfig) -> int:
    return m.vocab_size * m.d_model * (1 if m.tie_embeddings else 2)


def block_flops(m: TrunkConfig, seq_len: int) -> Flops:
    """One pass of one block at each of S positions, per position."""
    return Flops(linear=6.0 * block_matrix_params(m), attention=12.0 * seq_len * m.d_model, unembedding=0.0)


def linear_flops(weights: int) -> Flops:
    """One pass of a bias-free linear map with this many weights, per position."""
    return Flops(linear=6.0 * weights, attention=0.0, unembedding=0.0)


def unembedding_flops(m: TrunkConfig) -> Flops:
    """One pass of a V x d output head (the shared unembedding or an extra one), per position."""
    return Flops(linear=0.0, attention=0.0, unembedding=6.0 * m.vocab_size * m.d_model)


@dataclass(frozen=True)
class ArmPlan:
    """What one arm costs: the figures `harness plan` prints."""

    name: str
    objective: str  # the kind
    label: str  # how tables name it: "meta n=2", "deepseek D=1"
    n_predict: int
    params: ParamCounts
    flops_per_token: Flops
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
        flops_per_token=obj.flops(recipe.model, S),
        seq_len=S,
        tokens_per_step=recipe.tokens_per_step,
        steps=recipe.steps,
        targets_per_step=recipe.train.global_batch_size * obj.targets_per_row(S),
    )


@dataclass(frozen=True)
class MatchResult:
    """Each arm's budget under the study's rule, its ratio to the baseline, and the verdict."""

    rule: str
    tolerance: float
    baseline: str
    arms: dict[str, ArmPlan]
    problems: tuple[str, ...]

    @property
    def matched(self) -> bool:
        return not self.problems

    def ratio(self, arm: str) -> float:
        """The matched quantity (FLOPs or params) of `arm` over the baseline's."""
        key = _matched_quantity(self.rule)
        return key(self.arms[arm]) / key(self.arms[self.baseline])


RULES = ("tokens", "flops", "params")
QUANTITY = {"tokens": "training tokens", "flops": "training FLOPs", "params": "parameters"}


def _matched_quantity(rule: str):
    return {"tokens": lambda a: a.tokens, "flops": lambda a: a.total_flops, "params": lambda a: a.params.total}[rule]


def solve_steps(rule: str, baseline: ArmPlan, arm: ArmPlan) -> int:
    """Steps that give `arm` the baseline's budget: the same total FLOPs (`flops`), or the
    same tokens (`tokens`, and `params`, which also requires equal parameter counts)."""
    if rule == "flops":
        return max(1, round(baseline.total_flops / (arm.flops_per_token.total * arm.tokens_per_step)))
    if rule in ("tokens", "params"):
        return max(1, round(baseline.tokens / arm.tokens_per_step))
    raise HarnessError(f"unknown matching rule {rule!r}; allowed: {', '.join(RULES)}")


def match_arms(arms: dict[str, ArmPlan], baseline: str, rule: str, tolerance: float) -> MatchResult:
    """Give every arm its budget under `rule`, then check it: the study is refused if any arm's
    matched quantity differs from the baseline's by more than `tolerance` (a fraction).

    `tokens`: every arm trains on the baseline's tokens (what Meta and DeepSeek-V3 did);
    parameters and FLOPs are reported, not matched. `flops`: each arm's steps are set so its
    training FLOPs equal the baseline's (rounding to whole steps is what can break the
    tolerance). `params`: Meta's rule, the baseline's tokens and its parameter count.
    """
    if baseline not in arms:
        raise HarnessError(f"baseline {baseline!r} is not an arm; arms: {', '.join(arms)}")
    base = arms[baseline]
    solved = {
        name: arm if name == baseline else _with_steps(arm, solve_steps(rule, base, arm))
        for name, arm in arms.items()
    }
    quantity = _matched_quantity(rule)
    problems = []
    for name, arm in solved.items():
        ratio = quantity(arm) / quantity(base)
        if abs(ratio - 1) > tolerance:
            what = QUANTITY[rule]
            problems.append(
                f"arm {name!r} has {ratio:.4f}x the baseline's {what} (tolerance {tolerance:.2%})"
            )
    return MatchResult(rule=rule, tolerance=tolerance, baseline=baseline, arms=solved, problems=tuple(problems))


def _with_steps(arm: ArmPlan, steps: int) -> ArmPlan:
    return replace(arm, steps=steps)


def mfu(flops_per_token: float, tokens_per_second: float, peak_flops: float) -> float:
    """Model FLOPs utilisation (PaLM Appendix B): achieved over peak, from the same count."""
    return flops_per_token * tokens_per_second / peak_flops
