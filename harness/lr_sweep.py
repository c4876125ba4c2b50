"""The per-arm learning-rate sweep: every arm gets the same tuning budget.

A single peak learning rate shared by every arm is not a neutral choice: the laptop Meta
arms collapse at the rate that suits STP (`objectives/meta.md`). So each arm trains at every
rate of one grid on the sweep seed; the rate with the lowest final next-token validation
loss (`val/depth_1`, the quantity every arm is compared on) is that arm's rate for every
seed and view. Collapsed points (`eval/collapse.py`) are never chosen while a healthy point
exists; ties go to the lower rate. A choice on the edge of the grid is reported as such
(the optimum may lie outside it). Every point is reported, not only the winner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import HarnessError


@dataclass(frozen=True)
class SweepPoint:
    arm: str
    lr: float
    run_dir: str
    val_loss: float | None
    collapsed: list[str]


@dataclass(frozen=True)
class SweepResult:
    points: list[SweepPoint]
    chosen: dict[str, float]  # arm -> lr
    edge: dict[str, bool]  # arm -> chosen rate is the grid's smallest or largest

    def as_dict(self) -> dict:
        return {"points": [asdict(p) for p in self.points], "chosen": self.chosen, "edge": self.edge}


def _point(arm: str, lr: float, run_dir: Path, deeper_depths_are_harder: bool = True) -> SweepPoint | None:
    from harness.pipeline import Ledger
    from harness.eval.collapse import collapse_reasons

    if not (run_dir / "stages.json").exists():
        return None
    train = Ledger(run_dir).data.get("train")
    if train is None:
        return None
    val = train["outputs"].get("val", {})
    return SweepPoint(arm, lr, str(run_dir), val.get("val/depth_1"),
                      collapse_reasons(val, None, None, deeper_depths_are_harder=deeper_depths_are_harder))


def sweep_points(study, runs_root: Path) -> tuple[list[SweepPoint], list[str]]:
    """Every sweep point that has finished training, and those that have not."""
    from harness.pipeline import run_dir_for

    points, missing = [], []
    for arm, lr, recipe in study.sweep_runs():
        run_dir = run_dir_for(recipe, runs_root)
        point = _point(arm, lr, run_dir, recipe.objective.deeper_depths_are_harder)
        if point is None:
            missing.append(f"{arm} lr {lr:g} ({run_dir})")
        else:
            points.append(point)
    return points, missing


def choose(study, runs_root: Path) -> SweepResult | None:
    """The chosen rate of every swept arm (None when the study has no sweep); refuses while
    a sweep point has not finished training."""
    if study.config.lr_sweep is None:
        return None
    points, missing = sweep_points(study, runs_root)
    if missing:
        raise HarnessError(f"study {study.config.name}: learning-rate sweep not finished: {'; '.join(missing)}",
                           fix=f"run `harness study {study.path}` (with the same overrides and --runs)")
    grid = study.config.lr_sweep.grid
    chosen, edge = {}, {}
    for arm in dict.fromkeys(p.arm for p in points):  # the study's arm order
        mine = [p for p in points if p.arm == arm and p.val_loss is not None]
        healthy = [p for p in mine if not p.collapsed] or mine
        best = min(healthy, key=lambda p: (p.val_loss, p.lr))
        chosen[arm], edge[arm] = best.lr, best.lr in (min(grid), max(grid))
    return SweepResult(points, chosen, edge)
