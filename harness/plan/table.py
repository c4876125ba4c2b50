"""The tables `harness plan` prints: what each arm costs, whether a study compares them at
matched compute (`arms.plan_arm`, `matching.match_arms`), and what each arm needs of a GPU:
peak memory per GPU, whether it fits and what would make it, and time at a stated MFU
(`memory.estimate`, `hours.time_plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from harness.plan.arms import ArmPlan
from harness.plan.hours import time_plan
from harness.plan.matching import MatchResult
from harness.plan.memory import (
    HEADROOM,
    GiB,
    estimate,
    fitting_settings,
    recipe_setting,
)

if TYPE_CHECKING:
    from harness.recipe import Recipe


def _si(x: float) -> str:
    for unit, scale in (("Y", 1e24), ("Z", 1e21), ("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def arm_table(arms: dict[str, ArmPlan], title: str, match: MatchResult | None = None,
              shorter: dict[str, float] | None = None) -> Table:
    """`shorter`: arms that are shorter-schedule controls (arm -> fraction), outside the matching."""
    table = Table(title=title, title_justify="left")
    for column in ("arm", "objective", "params total", "trunk", "heads", "trainable", "FLOPs/token",
                   "tokens", "steps", "train FLOPs", "targets/step"):
        table.add_column(column, justify="left" if column in ("arm", "objective") else "right")
    if match is not None:
        table.add_column(f"{match.rule} ratio", justify="right")
    for name, arm in arms.items():
        row = [
            name + (" (baseline)" if match and name == match.baseline else ""),
            arm.label,
            _si(arm.params.total), _si(arm.params.trunk), _si(arm.params.heads), _si(arm.trainable_params),
            _si(arm.flops_per_token.total), _si(arm.tokens), str(arm.steps),
            _si(arm.total_flops), _si(arm.targets_per_step),
        ]
        if match is not None and name in (shorter or {}):
            row.append(f"control, x{shorter[name]:g} steps")
        elif match is not None:
            ratio = match.ratio(name)
            ok = abs(ratio - 1) <= match.tolerance
            row.append(f"[{'green' if ok else 'red'}]{ratio:.4f}[/]")
        table.add_row(*row)
    return table


def print_plan(arms: dict[str, ArmPlan], title: str, match: MatchResult | None, console: Console,
               shorter: dict[str, float] | None = None) -> None:
    console.print(arm_table(arms, title, match, shorter))
    if match is None:
        return
    if match.matched:
        console.print(f"[green]matched[/] on {match.rule} within {match.tolerance:.2%} of baseline {match.baseline!r}")
    else:
        console.print(f"[red]NOT matched[/] on {match.rule}: " + "; ".join(match.problems))


def print_protocol(study, console: Console) -> None:
    """What a study adds around the table: its views, sweep, controls and seeds per arm."""
    for view, match in study.views.items():
        if view == "params":
            kept = study.params_view_arms()
            console.print(f"view params: the same runs, parameter-matched arms only: {', '.join(kept)}")
        else:
            steps = ", ".join(f"{a} {p.steps}" for a, p in match.arms.items() if a != study.baseline
                              and not study.is_control(a))
            seeds = study.config.views[view].seeds or study.config.seeds
            console.print(f"view {view}: arms trained again at the baseline's {view} (steps: {steps}; seeds {seeds})")
    sweep = study.config.lr_sweep
    if sweep is not None:
        arms = [a for a in study.arm_order() if not study.is_control(a)]
        console.print(f"learning-rate sweep: {len(arms)} arms x {len(sweep.grid)} rates {sweep.grid} on seed "
                      f"{sweep.seed} (no arm reports it); the lowest validation loss chooses each arm's rate; a choice "
                      f"on the grid's edge adds the next rate beyond it, up to {sweep.extend} per arm")
    for arm in study.arm_order():
        spec = study.config.arms[arm]
        if spec.schedule_fraction is not None:
            console.print(f"late-vs-early control {arm}: {spec.control_of} on seeds {study.seeds(arm)}, "
                          f"{study.recipes[arm].steps} steps (x{spec.schedule_fraction:g}, whole schedule), at "
                          f"{spec.control_of}'s rate; its matched late-vs-early D must come out not distinguishable")
        elif spec.control_of:
            console.print(f"negative control {arm}: {spec.control_of} again on seeds {study.seeds(arm)}, "
                          f"at {spec.control_of}'s rate; must come out not distinguishable")
    primary = sum(len(study.seeds(a)) for a in study.recipes)
    swept = len(list(study.sweep_runs()))
    views = sum(1 for v in study.views if v != "params" for _ in study.view_runs(v, _any_rates(study)))
    extra = f" (+ up to {sweep.extend * len(arms)} sweep points past an edge)" if sweep is not None and sweep.extend else ""
    console.print(f"runs to train: {primary + swept + views}{extra} ({swept} sweep points, {primary} arm x seed runs, "
                  f"{views} in secondary views)")


def _any_rates(study) -> dict | None:
    return {a: 0.0 for a in study.recipes} if study.config.lr_sweep is not None else None


@dataclass(frozen=True)
class Hardware:
    """What `harness plan` plans for: `gpus` data-parallel ranks of one family."""

    gpus: int
    family: str
    memory: float  # bytes per GPU
    mfu: float


def _gib(x: float) -> str:
    return f"{x / GiB:.1f}"


def print_gpu_plan(recipes: dict[str, Recipe], arms: dict[str, ArmPlan], hw: Hardware, console: Console) -> None:
    """Per arm: peak memory per GPU by what holds it, the activations with and without
    checkpointing, time and GPU-hours; then one line per arm that does not fit, with the
    settings that would."""
    title = (f"per GPU on {hw.gpus} x {hw.family} ({hw.memory / GiB:g} GiB; fits means under {HEADROOM:.0%} of it), "
             f"time at MFU {hw.mfu:.0%}; GiB")
    table = Table(title=title, title_justify="left")
    for column in ("arm", "setting", "peak", "at", "weights", "grads", "optimizer", "activations", "logits", "other",
                   "act+logits plain/ckpt", "fits", "hours", "GPU-hours"):
        table.add_column(column, justify="left" if column in ("arm", "setting", "at") else "right")
    lines = []
    for name, recipe in recipes.items():
        setting = recipe_setting(recipe, hw.gpus)
        mem = estimate(recipe, setting)
        time = time_plan(recipe, arms[name].total_flops, hw.family, hw.gpus, hw.mfu)
        fits = mem.total <= HEADROOM * hw.memory
        short = f"{setting.precision} Z{setting.zero_stage} mb{setting.micro_batch}" + (" ckpt" if setting.checkpointing else "")
        table.add_row(name, short, _gib(mem.total), mem.moment, _gib(mem.weights), _gib(mem.gradients),
                      _gib(mem.optimizer), _gib(mem.activations), _gib(mem.logits), _gib(mem.other),
                      f"{_gib(mem.without_checkpointing)}/{_gib(mem.with_checkpointing)}",
                      "[green]yes[/]" if fits else "[red]no[/]", f"{time.seconds / 3600:.1f}", f"{time.gpu_hours:.0f}")
        if recipe.train.global_batch_size % (setting.micro_batch * hw.gpus):
            lines.append(f"warning: {name}: train.global_batch_size {recipe.train.global_batch_size} is not a multiple of "
                         f"micro_batch_size {setting.micro_batch} x {hw.gpus} GPUs (plan for another --gpus or change "
                         "train.micro_batch_size)")
        if not fits:
            lines.append(_fit_line(name, recipe, mem, hw))
    console.print(table)
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)  # one line each, however narrow the terminal


def _fit_line(name: str, recipe: Recipe, mem, hw: Hardware) -> str:
    head = (f"warning: {name} needs {_gib(mem.total)} GiB per GPU at its peak ({mem.moment}), over {HEADROOM:.0%} of "
            f"{hw.memory / GiB:g} GiB")
    fits = fitting_settings(recipe, mem.setting, hw.memory)
    if not fits:
        return (head + "; no ZeRO stage, micro-batch or activation checkpointing fits: plan more GPUs (--gpus: ZeRO "
                "shards the states over them) or a GPU with more memory")
    options = "; ".join(f"{overrides} ({_gib(plan.total)} GiB)" for overrides, plan in fits[:3])
    return f"{head}; fits with: {options}"
