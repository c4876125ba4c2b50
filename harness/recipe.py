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
from harness.model.pretrained_config import fill_model_section, resolve_dir
from harness.model.objectives.registry import default_objective, objective_union
from harness.tracking.config import TrackConfig
from harness.train.config import TrainConfig

RECIPE_VERSION = 1
# One of the registered objectives' configs, picked by `kind` (objectives/registry.py).
ObjectiveSection = objective_union()
# Sections whose values decide what is trained; the run directory is keyed by their hash
# so that changing how a run is evaluated or tracked does not retrain it.
TRAINING_SECTIONS = ("model", "objective", "data", "train")
# Fields added after recipes were first hashed, with the default that leaves them out of the
# hashed dump: a run directory is named by its recipe's hash, so a new field that joined the
# dump at its default would rename every run directory already made and retrain every study
# arm already run (tests/test_recipe_hashes.py pins them). Set, such a field is hashed.
UNHASHED_DEFAULTS = {("model", "init_from"): None, ("train", "freeze"): "none",
                     ("train", "activation_checkpointing"): False, ("data", "self_distill"): None}


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
        if self.train.freeze == "trunk" and self.model.tie_embeddings:
            raise ValueError(
                "train.freeze trunk trains the unembedding but model.tie_embeddings shares it with the frozen "
                "embedding; set train.freeze to trunk_and_unembedding (or none)"
            )
        if self.data.self_distill is not None:
            if self.model.init_from is None:
                raise ValueError("data.self_distill needs model.init_from: the continuations are a checkpoint's "
                                 "own; set model.init_from to it, or remove data.self_distill")
            if self.data.self_distill.prompt_tokens >= self.seq_len:
                raise ValueError(f"data.self_distill.prompt_tokens {self.data.self_distill.prompt_tokens} leaves "
                                 f"nothing to generate in windows of {self.seq_len}; lower it below the window")
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


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (), base_dir: str | Path | None = None) -> Recipe:
    """Read a recipe file, follow `extends:`, apply overrides, fill in what `model.init_from`
    decides and validate. `base_dir`: where relative paths start (default: the file's folder;
    a Slurm job's or a run directory's copy of a recipe names the original's)."""
    path = Path(path)
    data, origins = resolve_extends(path)
    apply_overrides(Recipe, data, origins, overrides)
    fill_model_section(data, origins, Path(base_dir) if base_dir is not None else path.parent)
    return validate_recipe(data, origins, str(path))


def recipe_warnings(recipe: Recipe, overrides=(), base_dir: str | Path | None = None) -> list[str]:
    """Settings that are allowed but probably not meant, one line each with what to change."""
    train, out = recipe.train, []
    init_from = recipe.model.init_from
    if train.freeze != "none" and init_from is None:
        out.append(f"train.freeze {train.freeze} without model.init_from freezes a randomly initialised trunk "
                   "(set model.init_from to the checkpoint whose trunk should stay as it is)")
    if recipe.data.self_distill is not None and train.freeze == "none":
        out.append("data.self_distill with train.freeze none trains the trunk on its own continuations "
                   "(set train.freeze to trunk_and_unembedding for post-hoc heads)")
    if init_from is not None and base_dir is not None and not resolve_dir(Path(base_dir), init_from).is_dir():
        out.append(f"model.init_from {init_from!r} is not there yet: the shape is the recipe's, checked against the "
                   "checkpoint's config.json when training starts (make the checkpoint first)")
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


def hashed_dump(recipe: Recipe) -> dict:
    """The resolved values as JSON data, without the new fields that hold their default
    (`UNHASHED_DEFAULTS`): what is hashed, written as recipe.yaml and logged as parameters."""
    dumped = recipe.model_dump(mode="json")
    for (section, field), default in UNHASHED_DEFAULTS.items():
        if dumped[section].get(field, default) == default:
            dumped[section].pop(field, None)
    return dumped


def recipe_hash(recipe: Recipe, sections: tuple[str, ...] | None = None) -> str:
    """sha256 of the resolved values (canonical JSON): key order, comments and formatting
    do not change it."""
    dumped = hashed_dump(recipe)
    if sections is not None:
        dumped = {key: dumped[key] for key in sections}
    return sha256_json(dumped)


def resolved_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML (sorted keys): loading it back gives the same hash."""
    import yaml

    header = f"# resolved recipe, sha256 {recipe_hash(recipe)}\n"
    return header + yaml.safe_dump(hashed_dump(recipe), sort_keys=True)

