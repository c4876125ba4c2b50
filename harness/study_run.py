"""`harness study`: run every arm x seed of a matched study, in order, in one process.

Order: the learning-rate sweep (every arm at every rate of the grid, on the sweep seed), the
choice of each arm's rate (`lr_sweep.choose`), the primary view (every arm x seed at its
rate; the sweep's chosen run is that seed's run, so its training is reused and only its
evaluation runs), then the secondary views that train runs of their own (`flops`).

Each run is an ordinary `harness run` of a budgeted recipe, so a re-run resumes: a finished
run skips every stage through its own ledger, an interrupted one continues from its last
checkpoint. Runs are tagged with the study, arm and seed (and sweep / view). The process
group (DeepSpeed, gloo on CPU) is started once and reused by every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.lr_sweep import choose
from harness.pipeline import STAGES, Ledger, Pipeline, run_dir_for
from harness.study import Study, check_matched, load_study


@dataclass(frozen=True)
class StudyRun:
    arm: str
    seed: int
    run_dir: Path
    status: str  # "ran" or "already finished"
    seconds: float
    part: str = "primary"  # "sweep lr=...", "primary", "view flops"


def finished(run_dir: Path) -> bool:
    """Every stage is in the run's ledger (what a later `harness run` would skip)."""
    ledger = Ledger(run_dir) if (run_dir / "stages.json").exists() else None
    return ledger is not None and all(stage in ledger.data for stage in STAGES)


def run_study(path: str | Path, overrides=(), runs_root: Path = Path("runs"), force=(),
              console: Console | None = None) -> tuple[Study, list[StudyRun]]:
    """Refuse an unmatched study, then run (or resume) the sweep, every arm x seed, the views."""
    study = load_study(path, overrides)
    check_matched(study)
    console = console or Console(stderr=True)
    done: list[StudyRun] = []
    sweep = [(f"sweep lr={lr:g}", arm, recipe.train.seed, recipe) for arm, lr, recipe in study.sweep_runs()]
    for i, (part, arm, seed, recipe) in enumerate(sweep, start=1):
        _run_one(study, part, arm, seed, recipe, f"{i}/{len(sweep)}", runs_root, force, console, done)
    result = choose(study, runs_root)
    lrs = result.chosen if result else None
    if result:
        shown = ", ".join(f"{arm} {lr:g}" + (" (grid edge)" if result.edge[arm] else "")
                          for arm, lr in result.chosen.items())
        console.print(f"study {study.config.name}: learning rates chosen by validation loss: {shown}")
    main = [("primary", arm, seed, recipe) for arm, seed, recipe in study.runs(lrs)]
    views = [(f"view {view}", arm, seed, recipe)
             for view in study.views for arm, seed, recipe in study.view_runs(view, lrs)]
    rest = main + views
    for i, (part, arm, seed, recipe) in enumerate(rest, start=1):
        _run_one(study, part, arm, seed, recipe, f"{i}/{len(rest)}", runs_root, force, console, done)
    return study, done


def _run_one(study: Study, part: str, arm: str, seed: int, recipe, count: str, runs_root: Path, force,
             console: Console, done: list[StudyRun]) -> None:
    run_dir = run_dir_for(recipe, runs_root)
    was_finished = finished(run_dir) and not force
    console.rule(f"study {study.config.name}: {part}, arm {arm}, seed {seed} ({count})")
    started = time.perf_counter()
    pipeline = Pipeline.from_recipe(recipe, study.arm_source(arm), runs_root, force, console)
    pipeline.run()
    if pipeline.dist.is_main:
        done.append(StudyRun(arm, seed, pipeline.run_dir, "already finished" if was_finished else "ran",
                             time.perf_counter() - started, part))
