"""Compute accounting: parameters and training FLOPs per token for each objective, and the
matched-compute solver that a study must pass before it spends any compute.

Parameters (no biases anywhere; d = d_model, f = ffn_hidden, V = vocab, h_kv = n_kv_heads,
hd = head_dim):
    block      = 2 d^2 + 2 d h_kv hd   (Wq, Wo; Wk, Wv)   + 3 d f (SwiGLU)   + 2 d (norms)
    embedding  = V d, plus V d for the unembedding unless tied
    STP        = embedding + L blocks + d (final norm)
    Meta n     = embedding + (L-n) shared blocks + n head blocks + d (one shared final norm):
                 exactly the STP count, which is Meta's parameter-matching rule
    DeepSeek D = STP + D * (enorm d + hnorm d + eh_proj 2 d^2 + block + final norm d)

Training FLOPs per input position (forward + backward = 3 x forward, 2 FLOPs per
multiply-add; only matrix products are counted, as `torch.utils.flop_counter` does; norms,
softmax and activations are under 1% at any size we run):
    linear     6 * (weights of the block's matrices) per block pass
    attention  12 * S * d per block pass (QK^T and AV over the full S x S square: the flop
               counter and PaLM's 6N + 12 L H Q T formula ignore the causal mask, and so do we)
    unembed    6 * V * d per output head pass
    STP        L block passes + 1 unembedding
    Meta n     L block passes (L-n trunk + n heads) + n unembeddings
    DeepSeek D (L + D) block passes + D eh_proj (6 * 2 d^2) + (1 + D) unembeddings
Every head runs at all S positions (a row of S+n tokens), so the count does not depend on
`target_window`; truncation only masks targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.model.trunk import TrunkConfig
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


def block_matrix_params(m: TrunkConfig) -> int:
    d = m.d_model
    return 2 * d * d + 2 * d * m.n_kv_heads * m.head_dim + 3 * d * m.ffn_hidden


def block_params(m: TrunkConfig) -> int:
    return block_matrix_params(m) + 2 * m.d_model


def embedding_params(m: TrunkConfig) -> int:
    return m.vocab_size * m.d_model * (1 if m.tie_embeddings else 2)


def deepseek_module_params(m: TrunkConfig) -> int:
    """enorm + hnorm + eh_proj (2d -> d) + one block + its own final norm (shared_head.norm)."""
    d = m.d_model
    return 2 * d + 2 * d * d + block_params(m) + d


def param_counts(m: TrunkConfig, objective) -> ParamCounts:
    L, d = m.n_layers, m.d_model
    emb = embedding_params(m)
    if objective.kind == "stp":
        return ParamCounts(embedding=emb, trunk=L * block_params(m) + d, heads=0)
    if objective.kind == "meta":
        n = objective.n
        return ParamCounts(embedding=emb, trunk=(L - n) * block_params(m), heads=n * block_params(m) + d)
    if objective.kind == "deepseek":
        return ParamCounts(
            embedding=emb, trunk=L * block_params(m) + d, heads=objective.depth * deepseek_module_params(m)
        )
    raise HarnessError(f"compute accounting does not know objective kind {objective.kind!r}")


def flops_per_token(m: TrunkConfig, objective, seq_len: int) -> Flops:
    """Training FLOPs (forward + backward) per input position at window length `seq_len`."""
    d = m.d_model
    block_linear = 6 * block_matrix_params(m)
    block_attention = 12 * seq_len * d
    unembed = 6 * m.vocab_size * d
    if objective.kind == "stp":
        passes, extra_linear, heads = m.n_layers, 0, 1
    elif objective.kind == "meta":
        passes, extra_linear, heads = m.n_layers, 0, objective.n
    elif objective.kind == "deepseek":
        D = objective.depth
        passes, extra_linear, heads = m.n_layers + D, D * 6 * 2 * d * d, 1 + D
    else:
        raise HarnessError(f"compute accounting does not know objective kind {objective.kind!r}")
    return Flops(
        linear=float(passes * block_linear + extra_linear),
        attention=float(passes * block_attention),
        unembedding=float(heads * unembed),
    )


def targets_per_row(objective, seq_len: int) -> int:
    """(position, target) pairs trained per row: S*n with a full window, fewer when truncated."""
    n = objective.n_predict
    if objective.target_window == "full":
        return seq_len * n
    return sum(seq_len - k for k in range(n))


@dataclass(frozen=True)
class ArmPlan:
    """What one arm costs: the figures `harness plan` prints."""

    name: str
    objective: str
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
        n_predict=obj.n_predict,
        params=param_counts(recipe.model, obj),
        flops_per_token=flops_per_token(recipe.model, obj, S),
        seq_len=S,
        tokens_per_step=recipe.tokens_per_step,
        steps=recipe.steps,
        targets_per_step=recipe.train.global_batch_size * targets_per_row(obj, S),
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
