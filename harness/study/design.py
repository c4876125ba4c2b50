"""A study, resolved: every arm's recipe with its budget under the matching rule, and the runs
the protocol asks for (arms x seeds, sweep points, views). Study files: arms, a baseline, seeds,
and the protocol around them: a learning-rate sweep, secondary views, negative controls.

Loading a study resolves every arm, gives each its budget under the matching rule
(`plan/matching.py: match_arms`) and writes that budget into the arm's recipe as `train.steps`, so
what `harness plan` prints is exactly what `harness study` would train.

The protocol (what makes a comparison fair, README, "Studies and comparison"):
- `matching.rule: tokens` (the papers' rule: equal training tokens; parameters and FLOPs
  are reported) is the primary view. `views:` adds secondary views: `params` reuses the
  primary runs and keeps the arms whose parameter count matches the baseline's; `flops` trains
  every other arm again at the baseline's training FLOPs (on `views.flops.seeds`).
- `lr_sweep:` gives every arm the same tuning budget: each arm trains at each learning rate
  of one grid on a seed no arm reports (`lr_sweep.seed`), the lowest final validation loss
  picks its rate (`harness/study/lr_sweep.py`), a choice on the grid's edge adds the next rate
  beyond it (up to `lr_sweep.extend` per arm), and every seed and view then trains at the
  chosen rate.
- An arm with `control_of: ARM` is a negative control: it takes ARM's chosen rate and must
  come out "not distinguishable" from the baseline; `seed_offset` gives it other seeds. With
  `schedule_fraction: f` it is instead ARM on a shorter complete schedule (f x the steps, its
  warmup and decay finished): a weaker run of the same objective, whose late-vs-early
  statistic at matched loss must come out null (it checks the checkpoint substitution of
  `report/matched_position.py`); its gains are shown, not judged.
- `overrides:` apply to every arm (before each arm's own), e.g. to skip the code benchmarks'
  generation in a study whose arms all score 0 there.
- `plateau:` declares when a run counts as stuck on a plateau (flat across the sweep's rates,
  or within a margin of a count-based bigram model): it is flagged and joins no verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pydantic import ValidationError

from harness.config_tree import DELETE, apply_overrides, format_validation_error, read_yaml, set_value
from harness.errors import HarnessError
from harness.model.pretrained_config import fill_model_section
from harness.plan.arms import plan_arm
from harness.plan.matching import MatchResult, match_arms
from harness.recipe import Recipe, resolve_extends, validate_recipe
from harness.study.config import ArmSpec, StudyConfig

LR_KEY = "train.optimizer.lr"


@dataclass(frozen=True)
class Study:
    path: Path
    config: StudyConfig
    recipes: dict[str, Recipe]
    match: MatchResult
    views: dict[str, MatchResult]

    @property
    def baseline(self) -> str:
        return self.config.baseline

    def is_control(self, arm: str) -> bool:
        return self.config.arms[arm].control_of is not None

    def seeds(self, arm: str) -> list[int]:
        spec = self.config.arms[arm]
        return [s + spec.seed_offset for s in (spec.seeds or self.config.seeds)]

    def arm_order(self) -> list[str]:
        """Baseline first, then the arms as written, controls last."""
        rest = [a for a in self.recipes if a != self.baseline]
        return [self.baseline] + [a for a in rest if not self.is_control(a)] + [a for a in rest if self.is_control(a)]

    def baseline_of(self, arm: str) -> str:
        """The arm whose runs `arm`'s gains are measured against (a control: its arm's)."""
        spec = self.config.arms[arm]
        if spec.control_of is not None:
            return self.baseline_of(spec.control_of)
        return spec.baseline or self.baseline

    def lr_arm(self, arm: str) -> str:
        """Whose sweep sets this arm's learning rate (a control's: the arm it controls)."""
        return self.config.arms[arm].control_of or arm

    def _tagged(self, arm: str, seed: int, recipe: Recipe, lr: float | None, **tags: str) -> Recipe:
        """Each recipe carries `track.tags` study/arm/seed (and view, sweep), so MLflow and
        `harness compare --experiment` can find a study's runs; tags are outside the training
        sections, so they change neither the run directory nor what is trained."""
        train = {"seed": seed}
        if lr is not None:
            train["optimizer"] = recipe.train.optimizer.model_copy(update={"lr": lr})
        merged = {**recipe.track.tags, "study": self.config.name, "arm": arm, "seed": str(seed), **tags}
        return recipe.model_copy(update={
            "train": recipe.train.model_copy(update=train),
            "track": recipe.track.model_copy(update={"tags": merged}),
        })

    def shorter_schedule(self, arm: str) -> float | None:
        """A shorter-schedule control's fraction of its arm's steps (None for every other arm)."""
        return self.config.arms[arm].schedule_fraction

    def runs(self, lrs: dict[str, float] | None = None) -> Iterator[tuple[str, int, Recipe]]:
        """(arm, seed, recipe) of the primary view, baseline first. With a sweep, `lrs` holds
        each swept arm's chosen rate (`lr_sweep.choose`)."""
        self._need_rates(lrs)
        for arm in self.arm_order():
            lr = lrs[self.lr_arm(arm)] if lrs else None
            tags = {"control_of": self.config.arms[arm].control_of} if self.is_control(arm) else {}
            if self.shorter_schedule(arm) is not None:
                tags["schedule_fraction"] = f"{self.shorter_schedule(arm):g}"
            if self.baseline_of(arm) != self.baseline:  # naming itself makes an arm a baseline of its own
                tags["baseline"] = self.baseline_of(arm)
            for seed in self.seeds(arm):
                yield arm, seed, self._tagged(arm, seed, self.recipes[arm], lr, **tags)

    def swept_arms(self) -> list[str]:
        """The arms the sweep tunes: every arm but the controls (they take their arm's rate)."""
        return [arm for arm in self.arm_order() if not self.is_control(arm)] if self.config.lr_sweep else []

    def sweep_run(self, arm: str, lr: float) -> Recipe:
        """One sweep point: `arm` at `lr` on the sweep seed. Only the training and its validation
        loss are needed, so the code benchmarks and analyses are off."""
        light = self.recipes[arm].eval.model_copy(update=_LIGHT_EVAL)
        recipe = self.recipes[arm].model_copy(update={"eval": light})
        return self._tagged(arm, self.config.lr_sweep.seed, recipe, lr, sweep="true")

    def sweep_runs(self, grids: dict[str, list[float]] | None = None) -> Iterator[tuple[str, float, Recipe]]:
        """(arm, lr, recipe) of every sweep point: every non-control arm at every rate of its
        grid (the study's, or `grids[arm]` once `lr_sweep.choose` has extended it)."""
        for arm in self.swept_arms():
            for lr in (grids or {}).get(arm, self.config.lr_sweep.grid):
                yield arm, lr, self.sweep_run(arm, lr)

    def view_runs(self, view: str, lrs: dict[str, float] | None = None) -> Iterator[tuple[str, int, Recipe]]:
        """(arm, seed, recipe) of a secondary view that trains runs of its own (`flops`): every
        arm but the baseline and the controls, re-budgeted; the baseline's runs are shared."""
        self._need_rates(lrs)
        if view not in self.views or view == "params":
            return
        seeds = self.config.views[view].seeds or self.config.seeds
        for arm in self.arm_order():
            if arm == self.baseline or self.is_control(arm):
                continue
            lr = lrs[self.lr_arm(arm)] if lrs else None
            budget = self.recipes[arm].train.model_copy(update={"steps": self.views[view].arms[arm].steps})
            recipe = self.recipes[arm].model_copy(update={"train": budget})
            for seed in seeds:
                yield arm, seed, self._tagged(arm, seed, recipe, lr, view=view)

    def params_view_arms(self) -> list[str]:
        """Arms the `params` view keeps: parameter count within tolerance of the baseline's."""
        view = self.views.get("params")
        return [] if view is None else [a for a in self.recipes if not any(f"arm {a!r}" in p for p in view.problems)
                                        and self.shorter_schedule(a) is None]

    def _need_rates(self, lrs) -> None:
        if self.config.lr_sweep is not None and lrs is None:
            raise HarnessError(f"study {self.config.name} sweeps the learning rate; its runs need the chosen rates",
                               fix="run `harness study` first (it runs the sweep), then compare")

    def arm_source(self, arm: str) -> Path:
        """The recipe file an arm comes from: relative `local` data paths resolve from it."""
        return self.path.parent / self.config.arms[arm].recipe


# The sweep only needs training's validation loss; everything the evaluate stage adds is off
# (the reference losses, which the collapse check reads, cost a cached lookup).
_LIGHT_EVAL = {"enabled": False, "per_position": False, "acceptance": False, "canonical_nll": False, "trajectory": False}


def is_study(path: str | Path) -> bool:
    """Study files are told apart from recipes by their `study_version` key."""
    return "study_version" in read_yaml(Path(path))


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Study:
    """Resolve every arm, apply the matching rule (and each view's), and refuse nothing yet
    (see `check_matched`)."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        config = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise HarnessError(format_validation_error(exc, StudyConfig, raw, {}, str(path))) from None
    data = {name: _arm_data(path, name, spec, config.overrides, overrides) for name, spec in config.arms.items()}
    recipes = {name: validate_recipe(d, o, f"{path} arm {name}") for name, (d, o) in data.items()}
    plans = {name: plan_arm(name, r) for name, r in recipes.items()}
    match = match_arms(plans, config.baseline, config.matching.rule, config.matching.tolerance)
    budgeted = {}
    for name, (arm_data, origins) in data.items():
        label = f"{path} matching rule"
        set_value(Recipe, arm_data, origins, "train.steps", match.arms[name].steps, label)
        set_value(Recipe, arm_data, origins, "train.tokens", DELETE, label)
        budgeted[name] = validate_recipe(arm_data, origins, f"{path} arm {name}")
    primary = {name: plan_arm(name, r) for name, r in budgeted.items()}
    views = {view: match_arms(primary, config.baseline, view, config.matching.tolerance) for view in config.views}
    for name, spec in config.arms.items():  # shorter-schedule controls: a fraction of the matched steps
        if spec.schedule_fraction is not None:
            steps = max(1, round(spec.schedule_fraction * budgeted[name].steps))
            budgeted[name] = budgeted[name].model_copy(update={"train": budgeted[name].train.model_copy(
                update={"steps": steps})})
    return Study(path=path, config=config, recipes=budgeted, match=match, views=views)


def _arm_data(study_path: Path, name: str, spec: ArmSpec, study_overrides, cli_overrides) -> tuple[dict, dict]:
    label = f"{study_path} arm {name}"
    data, origins = resolve_extends(study_path.parent / spec.recipe)
    for where, items in (("the study's overrides", study_overrides), ("overrides", spec.overrides)):
        for key, value in items.items():
            try:
                set_value(Recipe, data, origins, key, value, label)
            except HarnessError as exc:
                raise HarnessError(f"{label}: {where}: {exc}") from None
    apply_overrides(Recipe, data, origins, cli_overrides)
    fill_model_section(data, origins, (study_path.parent / spec.recipe).parent)
    return data, origins


def check_matched(study: Study) -> None:
    """Refuse a study whose arms are not compared at matched compute (its primary rule; the
    `flops` view re-budgets arms and is checked the same way; the `params` view only selects)."""
    problems = [f"on {study.config.matching.rule}: {p}" for p in study.match.problems]
    if "flops" in study.views:
        problems += [f"in its flops view: {p}" for p in study.views["flops"].problems]
    if not problems:
        return
    raise HarnessError(
        f"{study.path}: study {study.config.name!r} is not matched " + "; ".join(problems),
        fix="change the arms (layers, heads, vocab) or the matching rule, or raise matching.tolerance knowingly",
    )
