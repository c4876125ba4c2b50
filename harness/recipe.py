"""Recipes: the versioned YAML schema that pins down a run, its loading and its hash.

A recipe is data (house rule 5): `extends:` chains files (deep merge of mappings, lists
replaced, cycles refused, paths relative to the extending file), then `a.b=v` overrides and
`~a.b` deletions apply in order, each typed by the schema. Every section's schema lives in
the component that owns it; this module composes them and adds the cross-section checks.
Errors name the file that set the offending value, the field path and what is allowed.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.config_tree import apply_overrides, check_finite, format_validation_error, merge_with_origins, read_yaml
from harness.containers import ContainerConfig
from harness.data.config import DataConfig
from harness.errors import HarnessError
from harness.eval.config import EvalConfig
from harness.hashing import sha256_json
from harness.model.config import TrunkConfig
from harness.model.objectives.registry import default_objective, objective_union
from harness.tracking.config import TrackConfig
from harness.train.config import TrainConfig

RECIPE_VERSION = 1
# One of the registered objectives' configs, picked by `kind` (objectives/registry.py).
ObjectiveSection = objective_union()
# Sections whose values decide what is trained; the run directory is keyed by their hash
# so that changing how a run is evaluated or tracked does not retrain it.
TRAINING_SECTIONS = ("model", "objective", "data", "train")


class Recipe(BaseModel):
    """One run, completely: change any field and the hash changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipe_version: int = Field(description=f"schema version; this harness reads {RECIPE_VERSION}")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="names the run directory")
    model: TrunkConfig
    objective: ObjectiveSection = Field(default_factory=default_objective)
    data: DataConfig = DataConfig()
    train: TrainConfig
    eval: EvalConfig = EvalConfig()
    track: TrackConfig = TrackConfig()
    container: ContainerConfig = ContainerConfig()

    @model_validator(mode="after")
    def _sections_agree(self) -> "Recipe":
        if self.recipe_version != RECIPE_VERSION:
            raise ValueError(
                f"recipe_version {self.recipe_version} is not supported; this harness reads {RECIPE_VERSION}"
            )
        if self.data.seq_len is not None and self.data.seq_len > self.model.seq_len:
            raise ValueError(
                f"data.seq_len {self.data.seq_len} is above model.seq_len {self.model.seq_len}; "
                "lower data.seq_len or raise model.seq_len"
            )
        if problem := self.objective.model_problem(self.model):
            raise ValueError(problem)
        wrong = [p for p in self.eval.probes if p != self.data.source.kind]
        if wrong:
            raise ValueError(f"eval.probes {wrong} need the matching data.source.kind (it is {self.data.source.kind})")
        if self.objective.lookahead > self.data.lookahead_reserve:
            raise ValueError(
                f"the objective's targets reach {self.objective.lookahead} tokens ahead but "
                f"data.lookahead_reserve is {self.data.lookahead_reserve}; raise data.lookahead_reserve"
            )
        return self

    @property
    def seq_len(self) -> int:
        """S, the training window: the data section's, else the model's."""
        return self.data.seq_len or self.model.seq_len

    @property
    def steps(self) -> int:
        return self.train.total_steps(self.seq_len)

    @property
    def tokens_per_step(self) -> int:
        return self.train.global_batch_size * self.seq_len


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file, follow `extends:`, apply overrides and validate."""
    path = Path(path)
    data, origins = resolve_extends(path)
    apply_overrides(Recipe, data, origins, overrides)
    return validate_recipe(data, origins, str(path))


def recipe_warnings(recipe: Recipe, overrides=()) -> list[str]:
    """Settings that are allowed but probably not meant, one line each with what to change."""
    train, out = recipe.train, []
    steps, warmup = recipe.steps, train.schedule.warmup_steps
    if warmup >= steps:
        out.append(f"train.schedule.warmup_steps {warmup} is not below the {steps} training steps: the learning rate "
                   "never reaches its peak (lower train.schedule.warmup_steps)")
    if train.eval_every > steps:
        out.append(f"train.eval_every {train.eval_every} is above the {steps} training steps: validation runs only "
                   "at the end (lower train.eval_every for a curve)")
    keys = [item.split("=", 1)[0].strip() for item in overrides if "=" in item]
    if "objective.kind" in keys and "name" not in keys:
        out.append(f"objective.kind is overridden but the run keeps the recipe's name {recipe.name!r} (its run "
                   f"directory and MLflow run say so); add name=... to name it for its objective")
    return out


def validate_recipe(data: dict, origins: dict[str, str] | None = None, label: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise HarnessError(format_validation_error(exc, Recipe, data, origins or {}, label)) from None
    check_finite(recipe, origins or {}, label)
    return recipe


def resolve_extends(path: Path, _chain: tuple[Path, ...] = ()) -> tuple[dict, dict[str, str]]:
    """The merged mapping of a file and its `extends:` ancestors, and which file set each leaf."""
    path = path.resolve() if path.exists() else path
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise HarnessError(f"{_chain[-1]}: extends cycle: {cycle}", fix="remove one of the extends: lines")
    data = read_yaml(path, referrer=_chain[-1] if _chain else None)
    parent = data.pop("extends", None)
    if parent is None:
        return merge_with_origins({}, {}, data, str(path))
    if not isinstance(parent, str):
        raise HarnessError(f"{path}: extends: must be one file name, got {parent!r}")
    base, base_origins = resolve_extends(path.parent / parent, (*_chain, path))
    return merge_with_origins(base, base_origins, data, str(path))


# Fields added after recipes had been hashed, with the default that keeps the old behaviour:
# while a recipe holds that default the field is left out of its hash, so adding the field moved
# no run directory and no cached stage (tests/test_recipe_hashes.py pins every recipe's hash).
# A recipe that sets another value hashes it like any field.
UNHASHED_DEFAULTS = {("train", "activation_checkpointing"): False}


def recipe_hash(recipe: Recipe, sections: tuple[str, ...] | None = None) -> str:
    """sha256 of the resolved values (canonical JSON): key order, comments and formatting
    do not change it."""
    dumped = recipe.model_dump(mode="json")
    for (section, key), default in UNHASHED_DEFAULTS.items():
        if dumped[section].get(key, default) == default:
            dumped[section].pop(key, None)
    if sections is not None:
        dumped = {key: dumped[key] for key in sections}
    return sha256_json(dumped)


def resolved_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML (sorted keys): loading it back gives the same hash."""
    import yaml

    header = f"# resolved recipe, sha256 {recipe_hash(recipe)}\n"
    return header + yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=True)

