"""`harness study`: run every arm x seed of a matched study, in order, in one process (or in
`workers` processes at a time).

Order: the learning-rate sweep (every arm at every rate of the grid, on the sweep seed, then
the rates it adds beyond an edge choice, batch by batch), the choice of each arm's rate
(`lr_sweep.choose`), the primary view (every arm x seed at its rate; the sweep seed is no
arm's, so no sweep run is reported), then the secondary views that train runs of their own
(`flops`).

Each run is an ordinary `harness run` of a budgeted recipe, so a re-run resumes: a finished
run skips every stage through its own ledger, an interrupted one continues from its last
checkpoint. Runs are tagged with the study, arm and seed (and sweep / view). The process
group (DeepSpeed, gloo on CPU) is started once and reused by every run.

`workers > 1` runs that many runs at once, each in a process of its own (spawned: a run sets
torch's thread count, its signal handlers and its process group). The runs, their
directories and their numbers are the same as one at a time: only the schedule changes. The
sweep still finishes before any rate is chosen. Worth it where one run cannot use the
machine (a 2-core laptop, one thread per run: `train.num_threads` x workers <= cores); a
launcher's ranks (WORLD_SIZE > 1) already share one run, so there it is refused. The parent
opens the tracking store (and makes the experiments) once before the workers start, since
their first uses of a new sqlite store would race to build its tables. Workers die with
their study (`tether.py`); a study stopped by a signal cancels the runs not yet started and
stops the running ones the same way (a checkpoint, then exit 75; 130 for ^C).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console

from harness.errors import HarnessError
from harness.launch.preemption import Preemption, Stopped
from harness.run.pipeline import STAGES, Pipeline, run_dir_for
from harness.rundir import Ledger, ledger_has
from harness.study.design import Study, check_matched, load_study
from harness.study.lr_sweep import runs_lookup, sweep_state
from harness.study.tether import leave, orphaned, tether


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
    return all(stage in Ledger(run_dir).data for stage in STAGES) if ledger_has(run_dir, "plan") else False


def run_study(path: str | Path, overrides=(), runs_root: Path = Path("runs"), force=(),
              console: Console | None = None, workers: int = 1) -> tuple[Study, list[StudyRun]]:
    """Refuse an unmatched study, then run (or resume) the sweep, every arm x seed, the views."""
    study = load_study(path, overrides)
    check_matched(study)
    if workers > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise HarnessError(f"--workers {workers} under a launcher of {os.environ['WORLD_SIZE']} processes",
                           fix="use --workers with one process per run (a laptop); a launcher's ranks share one run")
    console = console or Console(stderr=True)
    done: list[StudyRun] = []
    result = _sweep(study, (path, tuple(overrides)), runs_root, force, console, done, workers)
    lrs = result.chosen if result else None
    if result:
        shown = ", ".join(f"{arm} {lr:g}" + (" (capped at the grid's edge)" if result.edge[arm] else "")
                          for arm, lr in result.chosen.items())
        console.print(f"study {study.config.name}: learning rates chosen by validation loss: {shown}")
    main = [("primary", arm, seed, recipe) for arm, seed, recipe in study.runs(lrs)]
    views = [(f"view {view}", arm, seed, recipe)
             for view in study.views for arm, seed, recipe in study.view_runs(view, lrs)]
    _run_all(study, (path, tuple(overrides)), main + views, runs_root, force, console, done, workers)
    return study, done


def _sweep(study: Study, source, runs_root: Path, force, console: Console, done: list[StudyRun], workers: int):
    """Train the sweep's points batch by batch: the grid, then the rates an edge choice adds
    (`lr_sweep.sweep_state`), until every arm's choice is interior or capped."""
    previous = None
    while True:
        state = sweep_state(study, runs_lookup(runs_root))
        if state is None or not state.needed:
            return None if state is None else state.result
        needed = [(arm, lr) for arm, lr, _ in state.needed]
        if needed == previous:  # trained, yet still missing: never loop on it
            raise HarnessError(f"study {study.config.name}: sweep points trained but not recorded: {needed}",
                               fix="read those runs' logs/harness.log")
        previous = needed
        jobs = [(f"sweep lr={lr:g}", arm, recipe.train.seed, recipe) for arm, lr, recipe in state.needed]
        _run_all(study, source, jobs, runs_root, force, console, done, workers)
        force = ()  # --force redoes a stage once, not in every batch


def _run_all(study: Study, source, jobs: list, runs_root: Path, force, console: Console, done: list[StudyRun],
             workers: int) -> None:
    counted = [(*job, f"{i}/{len(jobs)}") for i, job in enumerate(jobs, start=1)]
    if workers <= 1 or len(jobs) <= 1:
        for part, arm, seed, recipe, count in counted:
            _run_one(study, part, arm, seed, recipe, count, runs_root, force, console, done)
        return
    # Runs that train come first, so that evaluations of already-trained runs fill the end.
    counted.sort(key=lambda job: finished_training(run_dir_for(job[3], runs_root)))
    _prepare_tracking([job[3] for job in counted], console)
    ran, failures = [], []
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn"),
                               initializer=tether, initargs=(os.getpid(),))
    try:
        with Preemption(raising=True):  # a stop for the study stops its workers' runs too
            futures = [pool.submit(_worker, source, job, runs_root, tuple(force), os.getpid()) for job in counted]
            for future in futures:
                outcome = future.result()
                (ran if isinstance(outcome, StudyRun) else failures).append(outcome)
    except Stopped as stop:
        _stop_workers(pool)
        stop.preemption.finish(wait_for_ranks=False)
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown()
    if failures:  # every other run went on; the first failure is the one to fix
        raise HarnessError(f"{len(failures)} of {len(jobs)} runs failed; the first: {failures[0][0]}",
                           fix=failures[0][1] or "read that run's log, fix it, and run the same command again")
    order = {(part, arm, seed): i for i, (part, arm, seed, _recipe) in enumerate(jobs)}
    done.extend(sorted(ran, key=lambda run: order.get((run.part, run.arm, run.seed), len(order))))  # sequential order


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Runs not started are cancelled; running ones are sent SIGTERM, which stops each the
    way a preemption does (checkpoint, MLflow run KILLED, lock released); then wait for them."""
    import signal
    from multiprocessing import active_children

    pool.shutdown(wait=False, cancel_futures=True)
    for child in active_children():
        if child.pid is not None:
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    pool.shutdown(wait=True)


def _prepare_tracking(recipes, console: Console) -> None:
    """Open the tracking store and make the experiments once, before the workers use them."""
    experiments = {recipe.track.experiment for recipe in recipes if recipe.track.enabled}
    if not experiments:
        return
    from harness.tracking.gateway import prepare_store, tracking_uri

    try:
        prepare_store(tracking_uri(), experiments)
    except Exception as exc:  # each run goes offline and says so itself; the study goes on
        console.print(f"warning: the tracking store {tracking_uri()} could not be prepared "
                      f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")


def _worker(source, job, runs_root: Path, force, parent: int) -> StudyRun | tuple[str, str | None]:
    """One run in a worker process: its own console (stderr), its own pipeline. A run stopped
    because the study is gone ends the worker too (`tether.py`)."""
    path, overrides = source
    # Each worker's run is a process group of its own: a MASTER_PORT inherited from the parent
    # (set by an earlier run in it, or by the user) would make two of them bind the same port.
    os.environ.pop("MASTER_PORT", None)
    study = load_study(path, overrides)
    done: list[StudyRun] = []
    part, arm, seed, recipe, count = job
    try:
        _run_one(study, part, arm, seed, recipe, count, runs_root, force, Console(stderr=True), done)
    except HarnessError as exc:  # sent back as text: the parent raises, after the other runs
        return f"{part}, arm {arm}, seed {seed}: {exc.problem}", exc.fix
    except SystemExit as exc:
        if orphaned(parent):
            leave(exc.code if isinstance(exc.code, int) else 1)
        raise
    return done[0]


def finished_training(run_dir: Path) -> bool:
    """The run's train stage is in its ledger (only its later stages are left)."""
    return ledger_has(run_dir, "train")


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
