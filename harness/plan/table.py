"""The table `harness plan` prints: what each arm costs, and whether a study compares them at
matched compute (the figures come from `compute.plan_arm` and `compute.match_arms`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.plan.arms import ArmPlan
from harness.plan.matching import MatchResult


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
