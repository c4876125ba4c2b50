"""A study file's schema: arms (recipes plus overrides), a baseline, a matching rule and
tolerance, seeds, and the protocol around them (sweep, views, controls, plateau rule). Pure
data: `study/design.py` resolves the arms and budgets them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.plan.matching import RULES

STUDY_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Matching(_Strict):
    rule: Literal[RULES] = Field(
        description="tokens: every arm trains on the baseline's tokens (the papers' rule); "
        "flops: each arm's tokens set to the baseline's training FLOPs; "
        "params: Meta's rule, same tokens and the parameter counts must agree"
    )
    tolerance: float = Field(ge=0, le=0.5, description="largest allowed |ratio - 1| of the matched quantity")


class LrSweep(_Strict):
    grid: list[float] = Field(min_length=2, description="peak learning rates tried by every arm (same grid for all)")
    seed: int = Field(default=1000, description="the seed the sweep trains; no arm may run it, so the run that "
                      "chose a rate is never reported (a rate picked on a reported seed flatters that seed)")
    extend: int = Field(default=2, ge=0, le=10, description="a choice on the grid's edge adds the next rate beyond "
                        "it (the grid's own ratio at that edge), at most this many per arm; a choice still on the edge "
                        "after that is flagged 'capped'")

    @model_validator(mode="after")
    def _positive_and_distinct(self) -> "LrSweep":
        if any(not lr > 0 for lr in self.grid) or len(set(self.grid)) != len(self.grid):
            raise ValueError(f"lr_sweep.grid must hold distinct positive rates, got {self.grid}")
        return self


class View(_Strict):
    seeds: list[int] | None = Field(default=None, min_length=1,
                                    description="flops view: seeds trained again (default: the study's)")


class ArmSpec(_Strict):
    recipe: str = Field(description="recipe file, relative to the study file")
    overrides: dict[str, Any] = Field(default={}, description="dotted key -> value, typed as in YAML")
    control_of: str | None = Field(default=None, description="a negative control: trains at this arm's chosen lr")
    seed_offset: int = Field(default=0, ge=0, description="added to every seed (a control's seeds differ)")
    seeds: list[int] | None = Field(default=None, min_length=1, description="this arm's seeds (default: the study's)")
    baseline: str | None = Field(
        default=None,
        description="the arm this arm's gains and verdicts are measured against (default: the study's baseline), "
        "e.g. the STP arm of the same model size in a study of several sizes; budgets still follow the study's "
        "baseline under the matching rule",
    )
    schedule_fraction: float | None = Field(
        default=None, gt=0, lt=1,
        description="a control (control_of) trained on this fraction of its arm's steps with a complete schedule: "
        "a weaker run of the same objective whose matched late-vs-early statistic must be null",
    )


class Plateau(_Strict):
    flat_sweep: float | None = Field(
        default=0.005, ge=0, description="nats: an arm whose healthy sweep points all lie within this of each other "
        "is stuck (the rate does not matter: a plateau, not learning); None: not checked",
    )
    bigram_margin: float | None = Field(
        default=None, description="nats: a run whose held-out loss is above the count-based bigram model's minus "
        "this is stuck (it has learnt nothing a bigram table does not know); None: not checked",
    )


class StudyConfig(_Strict):
    study_version: int
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    baseline: str
    matching: Matching
    seeds: list[int] = Field(default=[0], min_length=1)
    overrides: dict[str, Any] = Field(default={}, description="dotted key -> value for every arm, before its own")
    lr_sweep: LrSweep | None = None
    plateau: Plateau = Plateau()
    seed_sd: dict[str, float] = Field(
        default={}, description="metric -> the seed-to-seed SD of an arm's mean, declared (e.g. from an earlier study), "
        "for verdicts on one seed; without it one seed gives no verdict unless a negative control measures it")
    views: dict[Literal["params", "flops"], View] = Field(default={}, description="secondary views")
    arms: dict[str, ArmSpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _arms_agree(self) -> "StudyConfig":
        if self.study_version != STUDY_VERSION:
            raise ValueError(f"study_version {self.study_version} is not supported; this harness reads {STUDY_VERSION}")
        if self.baseline not in self.arms:
            raise ValueError(f"baseline {self.baseline!r} is not one of the arms: {', '.join(self.arms)}")
        for name, spec in self.arms.items():
            if spec.control_of is not None and spec.control_of not in self.arms:
                raise ValueError(f"arm {name}: control_of {spec.control_of!r} is not one of the arms")
            if spec.control_of is not None and self.arms[spec.control_of].control_of is not None:
                raise ValueError(f"arm {name}: control_of must name an arm that is not itself a control")
            if spec.baseline is not None:
                other = self.arms.get(spec.baseline)
                if other is None or other.control_of is not None or other.baseline not in (None, spec.baseline):
                    raise ValueError(f"arm {name}: baseline {spec.baseline!r} must name an arm of this study that is "
                                     "neither a control nor measured against another arm")
                if spec.control_of is not None:
                    raise ValueError(f"arm {name}: a control is measured against its arm's baseline; drop `baseline`")
            if spec.schedule_fraction is not None and spec.control_of is None:
                raise ValueError(f"arm {name}: schedule_fraction makes a shorter-schedule control; it needs control_of")
        if self.lr_sweep is not None:
            users = sorted(name for name, spec in self.arms.items()
                           if self.lr_sweep.seed in [s + spec.seed_offset for s in (spec.seeds or self.seeds)])
            views = sorted(v for v, view in self.views.items() if self.lr_sweep.seed in (view.seeds or []))
            if users or views:
                raise ValueError(f"lr_sweep.seed {self.lr_sweep.seed} is also run by {', '.join(users + views)}: the "
                                 "seed that chose a rate would be reported, and a rate picked on it flatters it; give "
                                 "the sweep a seed no arm runs (the default, 1000)")
        if self.matching.rule in self.views:
            raise ValueError(f"views: {self.matching.rule} is already the primary view (matching.rule)")
        return self
