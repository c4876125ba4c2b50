"""Jobs from a recipe or a study: one per recipe, or one per arm x seed, each with its script.

Every job directory holds the resolved recipe it runs (`recipe.yaml`, written with
`resolved_yaml`, so the job runs exactly what `harness plan` showed, budget and seed
included), the sbatch script and, once it runs, Slurm's log. Directories are named by the
recipe hash, so regenerating a job for the same recipe lands in the same place.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import rundir
from harness.errors import HarnessError, one_line
from harness.hashing import sha256_text
from harness.launch.sbatch import Job, SlurmOptions, render_sbatch
from harness.recipe import Recipe, recipe_hash, resolved_yaml

SCRIPT_NAME = "job.sbatch"
RECIPE_NAME = rundir.RECIPE  # a job directory holds its recipe under the run directory's name for it


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    recipe: Recipe
    script: str

    @property
    def script_path(self) -> Path:
        return self.job.directory / SCRIPT_NAME


def plan_jobs(path: str, overrides: tuple[str, ...], options: SlurmOptions, jobs_root: Path,
              workdir: Path) -> list[PlannedJob]:
    """Resolve the recipe or study and render one script per run; nothing is written."""
    from harness.study.design import check_matched, is_study, load_study

    jobs_root = jobs_root.resolve()
    if is_study(path):
        study = load_study(path, overrides)
        check_matched(study)
        runs = [(f"{study.config.name}-{name}", recipe, study.arm_source(arm).resolve().parent)
                for name, arm, recipe in study_jobs(study, workdir / "runs")]
        digest = sha256_text("".join(recipe_hash(r) for _, r, _ in runs))[:8]
        base = jobs_root / f"{study.config.name}-{digest}"
        named = [(name, base / name.removeprefix(f"{study.config.name}-"), r, b) for name, r, b in runs]
        title = f"study {study.config.name}"
    else:
        from harness.recipe import load_recipe

        recipe = load_recipe(path, overrides)
        named = [(recipe.name, jobs_root / f"{recipe.name}-{recipe_hash(recipe)[:8]}", recipe, Path(path).resolve().parent)]
        title = f"recipe {path}"
    planned = []
    for name, directory, recipe, base_dir in named:
        job = Job(name=name, directory=directory, recipe=directory / RECIPE_NAME, recipe_sha256=recipe_hash(recipe),
                  base_dir=base_dir)
        planned.append(PlannedJob(job, recipe, render_sbatch(job, options, workdir.resolve(), title)))
    return planned


def study_jobs(study, runs_root: Path) -> list[tuple[str, str, object]]:
    """(job name, arm, recipe) of every run a study needs now. With a learning-rate sweep whose
    runs have not all finished (in `runs_root`), that is the sweep's next points (its grid, then
    the rates it adds past an edge choice); once it has, every arm x seed at its chosen rate and
    the secondary views' runs (emit the jobs again after each batch)."""
    from harness.study.lr_sweep import runs_lookup, sweep_state

    lrs = None
    state = sweep_state(study, runs_lookup(runs_root))
    if state is not None:
        if state.needed:
            return [(f"{arm}-lr{lr:g}", arm, recipe) for arm, lr, recipe in state.needed]
        lrs = state.result.chosen
    jobs = [(f"{arm}-s{seed}", arm, recipe) for arm, seed, recipe in study.runs(lrs)]
    for view in study.views:
        jobs += [(f"{arm}-{view}-s{seed}", arm, recipe) for arm, seed, recipe in study.view_runs(view, lrs)]
    return jobs


def write_jobs(planned: list[PlannedJob]) -> None:
    for item in planned:
        item.job.directory.mkdir(parents=True, exist_ok=True)
        item.job.recipe.write_text(resolved_yaml(item.recipe), encoding="utf-8")
        item.script_path.write_text(item.script, encoding="utf-8")
        item.script_path.chmod(0o755)


def submit(planned: list[PlannedJob], sbatch: str = "sbatch") -> list[str]:
    """sbatch every script; returns Slurm's job ids. Stops at the first refusal."""
    if shutil.which(sbatch) is None:
        raise HarnessError(f"{sbatch} is not on PATH, so nothing can be submitted from here",
                           fix="run on a Slurm login node, or write the scripts (without --submit) and sbatch them there")
    ids = []
    for item in planned:
        proc = subprocess.run([sbatch, "--parsable", str(item.script_path)], capture_output=True, text=True)
        if proc.returncode:
            done = f" (submitted before it: {', '.join(ids)})" if ids else ""
            raise HarnessError(f"sbatch refused {item.script_path}: {one_line(proc.stderr)[:300]}{done}",
                               fix="check partition, account and time against `sinfo`/`sacctmgr`")
        ids.append(proc.stdout.strip().split(";")[0])
    return ids
