"""Study files: arms (recipes plus overrides), a baseline, a matching rule, a tolerance, seeds.

Loading a study resolves every arm, gives each its budget under the matching rule
(`compute.match_arms`) and writes that budget into the arm's recipe as `train.steps`, so
what `harness plan` prints is exactly what `harness study` would train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.compute import MatchResult, match_arms, plan_arm
from harness.config_tree import DELETE, apply_override, format_validation_error, read_yaml, set_value
from harness.errors import HarnessError
from harness.recipe import Recipe, resolve_extends, validate_recipe

STUDY_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Matching(_Strict):
    rule: Literal["flops", "params"] = Field(
        description="flops: each arm's tokens set to the baseline's training FLOPs; "
        "params: Meta's rule, same tokens and the parameter counts must agree"
    )
    tolerance: float = Field(ge=0, le=0.5, description="largest allowed |ratio - 1| of the matched quantity")


class ArmSpec(_Strict):
    recipe: str = Field(description="recipe file, relative to the study file")
    overrides: dict[str, Any] = Field(default={}, description="dotted key -> value, typed as in YAML")


class StudyConfig(_Strict):
    study_version: int
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    baseline: str
    matching: Matching
    seeds: list[int] = Field(default=[0], min_length=1)
    arms: dict[str, ArmSpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _baseline_is_an_arm(self) -> "StudyConfig":
        if self.study_version != STUDY_VERSION:
            raise ValueError(f"study_version {self.study_version} is not supported; this harness reads {STUDY_VERSION}")
        if self.baseline not in self.arms:
            raise ValueError(f"baseline {self.baseline!r} is not one of the arms: {', '.join(self.arms)}")
        return self


@dataclass(frozen=True)
class Study:
    path: Path
    config: StudyConfig
    recipes: dict[str, Recipe]
    match: MatchResult

    def runs(self):
        """(arm, seed, recipe) for every arm x seed, baseline first.

        Each recipe carries `track.tags` study/arm/seed, so MLflow (and `harness compare
        --experiment`) can find a study's runs; tags are outside the training sections, so
        they change neither the run directory nor what is trained."""
        order = [self.config.baseline] + [a for a in self.recipes if a != self.config.baseline]
        for arm in order:
            for seed in self.config.seeds:
                recipe = self.recipes[arm]
                tags = {**recipe.track.tags, "study": self.config.name, "arm": arm, "seed": str(seed)}
                yield arm, seed, recipe.model_copy(update={
                    "train": recipe.train.model_copy(update={"seed": seed}),
                    "track": recipe.track.model_copy(update={"tags": tags}),
                })

    def arm_source(self, arm: str) -> Path:
        """The recipe file an arm comes from: relative `local` data paths resolve from it."""
        return self.path.parent / self.config.arms[arm].recipe


def is_study(path: str | Path) -> bool:
    """Study files are told apart from recipes by their `study_version` key."""
    return "study_version" in read_yaml(Path(path))


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Study:
    """Resolve every arm, apply the matching rule, and refuse nothing yet (see `check`)."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        config = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise HarnessError(format_validation_error(exc, StudyConfig, raw, {}, str(path))) from None
    data = {name: _arm_data(path, name, spec, overrides) for name, spec in config.arms.items()}
    recipes = {name: validate_recipe(d, o, f"{path} arm {name}") for name, (d, o) in data.items()}
    plans = {name: plan_arm(name, r) for name, r in recipes.items()}
    match = match_arms(plans, config.baseline, config.matching.rule, config.matching.tolerance)
    budgeted = {}
    for name, (arm_data, origins) in data.items():
        label = f"{path} matching rule"
        set_value(Recipe, arm_data, origins, "train.steps", match.arms[name].steps, label)
        set_value(Recipe, arm_data, origins, "train.tokens", DELETE, label)
        budgeted[name] = validate_recipe(arm_data, origins, f"{path} arm {name}")
    return Study(path=path, config=config, recipes=budgeted, match=match)


def _arm_data(study_path: Path, name: str, spec: ArmSpec, cli_overrides) -> tuple[dict, dict]:
    label = f"{study_path} arm {name}"
    data, origins = resolve_extends(study_path.parent / spec.recipe)
    for key, value in spec.overrides.items():
        try:
            set_value(Recipe, data, origins, key, value, label)
        except HarnessError as exc:
            raise HarnessError(f"{label}: overrides: {exc}") from None
    for item in cli_overrides:
        apply_override(Recipe, data, origins, item)
    return data, origins


def check_matched(study: Study) -> None:
    """Refuse a study whose arms are not compared at matched compute."""
    if study.match.matched:
        return
    rule = study.config.matching.rule
    raise HarnessError(
        f"{study.path}: study {study.config.name!r} is not matched on {rule}: " + "; ".join(study.match.problems),
        fix="change the arms (layers, heads, vocab) or the matching rule, or raise matching.tolerance knowingly",
    )
