"""The table `harness plan` prints: what each arm costs, and whether a study compares them at
matched compute (the figures come from `compute.plan_arm` and `compute.match_arms`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.compute import ArmPlan, MatchResult


def _si(x: float) -> str:
    for unit, scale in (("Y", 1e24), ("Z", 1e21), ("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def arm_table(arms: dict[str, ArmPlan], title: str, match: MatchResult | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("arm", "objective", "params total", "trunk", "heads", "FLOPs/token",
                   "tokens", "steps", "train FLOPs", "targets/step"):
        table.add_column(column, justify="left" if column in ("arm", "objective") else "right")
    if match is not None:
        table.add_column(f"{match.rule} ratio", justify="right")
    for name, arm in arms.items():
        row = [
            name + (" (baseline)" if match and name == match.baseline else ""),
            arm.label,
            _si(arm.params.total), _si(arm.params.trunk), _si(arm.params.heads),
            _si(arm.flops_per_token.total), _si(arm.tokens), str(arm.steps),
            _si(arm.total_flops), _si(arm.targets_per_step),
        ]
        if match is not None:
            ratio = match.ratio(name)
            ok = abs(ratio - 1) <= match.tolerance
            row.append(f"[{'green' if ok else 'red'}]{ratio:.4f}[/]")
        table.add_row(*row)
    return table


def print_plan(arms: dict[str, ArmPlan], title: str, match: MatchResult | None, console: Console) -> None:
    console.print(arm_table(arms, title, match))
    if match is None:
        return
    if match.matched:
        console.print(f"[green]matched[/] on {match.rule} within {match.tolerance:.2%} of baseline {match.baseline!r}")
    else:
        console.print(f"[red]NOT matched[/] on {match.rule}: " + "; ".join(match.problems))
