"""The matched-compute solver: each arm's budget under a study's rule, checked against a
tolerance before any compute is spent."""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.errors import HarnessError
from harness.plan.arms import ArmPlan


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
