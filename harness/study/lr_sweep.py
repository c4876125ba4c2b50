"""The per-arm learning-rate sweep: every arm gets the same tuning budget, and no arm's rate
is chosen by luck or stopped at a grid's edge.

A single peak learning rate shared by every arm is not a neutral choice: the laptop Meta
arms collapse at the rate that suits STP (`objectives/meta.md`). So each arm trains at every
rate of one grid on the sweep seed; the rate with the lowest final next-token validation
loss (`val/depth_1`, the quantity every arm is compared on) is that arm's rate for every
seed and view. Collapsed points (`eval/collapse.py`) are never chosen while a healthy point
exists; ties go to the lower rate.

Two rules keep the choice honest:
- The sweep seed is run by no arm (`study.py` refuses a study where it is): the run that won
  the choice is never reported, so a rate picked because it suits one seed's data order
  flatters no reported number.
- A choice on the edge of the grid adds the next rate beyond that edge, at the grid's own
  ratio there (x3 for 1e-3, 3e-3, 9e-3), and chooses again, until the choice is interior or
  `lr_sweep.extend` rates have been added to that arm; a choice still on the edge is
  flagged "capped". Each arm's final grid is reported with every point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from harness.errors import HarnessError
from harness.rundir import Ledger, ledger_has


@dataclass(frozen=True)
class SweepPoint:
    arm: str
    lr: float
    run_dir: str  # the run directory's name (relative to the runs folder)
    val_loss: float | None
    collapsed: list[str]


@dataclass(frozen=True)
class SweepResult:
    points: list[SweepPoint]
    chosen: dict[str, float]  # arm -> lr
    edge: dict[str, bool]  # arm -> the chosen rate is still on its final grid's edge (capped)
    grids: dict[str, list[float]] = field(default_factory=dict)  # arm -> its final grid, ascending

    def as_dict(self) -> dict:
        return {"points": [asdict(p) for p in self.points], "chosen": self.chosen, "edge": self.edge,
                "grids": self.grids}


@dataclass(frozen=True)
class SweepState:
    """Where the sweep stands: the points finished so far, the runs it needs next, and the
    choice once nothing is missing."""

    points: list[SweepPoint]
    needed: list[tuple[str, float, object]]  # (arm, lr, recipe) of sweep points not yet trained
    result: SweepResult | None


def point_from_run(arm: str, lr: float, run_dir: Path, deeper_depths_are_harder: bool = True) -> SweepPoint | None:
    """A finished sweep run's point, read from its ledger; None while it has not trained."""
    from harness.eval.analyses.collapse import collapse_reasons

    if not ledger_has(run_dir, "train"):
        return None
    train = Ledger(run_dir).data.get("train")
    if train is None:
        return None
    val = train["outputs"].get("val", {})
    return SweepPoint(arm, lr, run_dir.name, val.get("val/depth_1"),
                      collapse_reasons(val, None, None, deeper_depths_are_harder=deeper_depths_are_harder))


def runs_lookup(runs_root: Path) -> Callable[[str, float, object], SweepPoint | None]:
    """Sweep points read from the run directories under `runs_root`."""
    from harness.run.pipeline import run_dir_for

    def lookup(arm: str, lr: float, recipe) -> SweepPoint | None:
        return point_from_run(arm, lr, run_dir_for(recipe, runs_root), recipe.objective.deeper_depths_are_harder)

    return lookup


def next_rate(grid: list[float], upward: bool) -> float:
    """The rate beyond the edge of an ascending grid, at the grid's own ratio at that edge
    (rounded to 4 significant digits, so 3e-3 x 3 is 9e-3, not 0.009000000000000001)."""
    ratio = grid[-1] / grid[-2] if upward else grid[0] / grid[1]
    return float(f"{(grid[-1] if upward else grid[0]) * ratio:.4g}")


def _best(points: list[SweepPoint]) -> SweepPoint | None:
    scored = [p for p in points if p.val_loss is not None]
    healthy = [p for p in scored if not p.collapsed] or scored
    return min(healthy, key=lambda p: (p.val_loss, p.lr)) if healthy else None


def sweep_state(study, lookup: Callable[[str, float, object], SweepPoint | None]) -> SweepState | None:
    """Walk every swept arm's grid, extending it past an edge choice while allowed; None when
    the study has no sweep."""
    sweep = study.config.lr_sweep
    if sweep is None:
        return None
    points, needed, chosen, edge, grids = [], [], {}, {}, {}
    for arm in study.swept_arms():
        grid = sorted(sweep.grid)
        while True:
            found = {lr: lookup(arm, lr, study.sweep_run(arm, lr)) for lr in grid}
            missing = [lr for lr, point in found.items() if point is None]
            if missing:
                needed += [(arm, lr, study.sweep_run(arm, lr)) for lr in missing]
                break
            best = _best(list(found.values()))
            on_edge = best is not None and best.lr in (grid[0], grid[-1])
            if on_edge and len(grid) - len(sweep.grid) < sweep.extend:
                grid = sorted([*grid, next_rate(grid, upward=best.lr == grid[-1])])
                continue
            points += list(found.values())
            if best is not None:
                chosen[arm], edge[arm], grids[arm] = best.lr, on_edge, grid
            break
    result = SweepResult(points, chosen, edge, grids) if not needed else None
    return SweepState(points, needed, result)


def choose(study, runs_root: Path | None = None, lookup=None) -> SweepResult | None:
    """The chosen rate of every swept arm (None when the study has no sweep); refuses while
    a sweep point has not finished training. Points come from `lookup` (committed records)
    or from the run directories under `runs_root`."""
    state = sweep_state(study, lookup or runs_lookup(runs_root))
    if state is None:
        return None
    if state.needed:
        where = f" under {runs_root}" if lookup is None else ""
        missing = "; ".join(f"{arm} lr {lr:g}" for arm, lr, _ in state.needed)
        raise HarnessError(f"study {study.config.name}: learning-rate sweep not finished{where}: {missing}",
                           fix=f"run `harness study {study.path}` (with the same overrides and --runs)")
    return state.result
