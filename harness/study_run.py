"""`harness study`: run every arm x seed of a matched study, in order, in one process.

Each run is an ordinary `harness run` of the arm's budgeted recipe (`Study.runs()`), so a
re-run resumes: a finished arm skips every stage through its own ledger, an interrupted
one continues from its last checkpoint. Runs are tagged with the study, arm and seed.
The process group (DeepSpeed, gloo on CPU) is started once and reused by every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.pipeline import STAGES, Ledger, Pipeline, run_dir_for
from harness.study import Study, check_matched, load_study


@dataclass(frozen=True)
class StudyRun:
    arm: str
    seed: int
    run_dir: Path
    status: str  # "ran" or "already finished"
    seconds: float


def finished(run_dir: Path) -> bool:
    """Every stage is in the run's ledger (what a later `harness run` would skip)."""
    ledger = Ledger(run_dir) if (run_dir / "stages.json").exists() else None
    return ledger is not None and all(stage in ledger.data for stage in STAGES)


def run_study(path: str | Path, overrides=(), runs_root: Path = Path("runs"), force=(),
              console: Console | None = None) -> tuple[Study, list[StudyRun]]:
    """Refuse an unmatched study, then run (or resume) each arm x seed, baseline first."""
    study = load_study(path, overrides)
    check_matched(study)
    console = console or Console(stderr=True)
    done = []
    total = len(study.config.arms) * len(study.config.seeds)
    for i, (arm, seed, recipe) in enumerate(study.runs(), start=1):
        run_dir = run_dir_for(recipe, runs_root)
        was_finished = finished(run_dir) and not force
        console.rule(f"study {study.config.name}: arm {arm}, seed {seed} ({i}/{total})")
        started = time.perf_counter()
        pipeline = Pipeline.from_recipe(recipe, study.arm_source(arm), runs_root, force, console)
        pipeline.run()
        if not pipeline.dist.is_main:
            continue
        done.append(StudyRun(arm, seed, pipeline.run_dir, "already finished" if was_finished else "ran",
                             time.perf_counter() - started))
    return study, done
