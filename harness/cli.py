"""The `harness` command line: a thin click group; every command parses and delegates.

A `HarnessError` anywhere below becomes one `error: ...` line on stderr and exit status 2,
and so does a filesystem that refuses a write (read-only, permission, space, quota: the
machine's state, named with its path and the fix); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness import __version__
from harness.console import stdout_console
from harness.errors import HarnessError


class _Group(click.Group):
    def invoke(self, ctx):
        from harness.fs_errors import explain, filesystem_error

        try:
            return super().invoke(ctx)
        except OSError as exc:
            refused = filesystem_error(exc)
            if refused is None:
                raise
            _fail(explain(refused))
        except HarnessError as exc:
            _fail(exc)


def _fail(exc: HarnessError) -> None:
    for line in str(exc).splitlines() or [""]:
        click.echo(f"error: {line}", err=True)
    sys.exit(exc.exit_code)


# 100 columns: the house's terminal width; click's default (80) cuts every command's description.
@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mtp-harness")
def main() -> None:
    """mtp-harness: reproducible multi-token prediction experiments."""


overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE | ~KEY]...")


@main.command(short_help="What each arm costs (FLOPs, memory per GPU, GPU-hours); checks a study's matched compute")
@click.argument("path", type=click.Path(dir_okay=False))
@overrides_argument
@click.option("--gpus", type=click.IntRange(min=1), default=8, show_default=True,
              help="data-parallel ranks the memory and time are planned for (ZeRO shards states over them)")
@click.option("--gpu", "family", default="H100 SXM", show_default=True,
              help="GPU family, for its dense peak and its memory (harness/train/throughput.py lists them)")
@click.option("--gpu-memory", default=None, metavar="SIZE",
              help="memory per GPU to fit in, e.g. 80GB (GB meaning GiB) [default: the family's]")
@click.option("--mfu", type=float, default=0.4, show_default=True,
              help="model FLOPs utilisation the time is predicted at")
@click.pass_context
def plan(ctx, path: str, overrides: tuple[str, ...], gpus: int, family: str, gpu_memory: str | None, mfu: float) -> None:
    """Params, FLOPs and budget of a recipe, or of every arm of a study (checked for matching);
    then per arm the peak memory per GPU, whether it fits and which setting would, and the
    wall time and GPU-hours at --mfu (for recipes that train in bf16/fp16, or when a GPU option
    is given)."""
    from harness.eval.benchmarks.prompt_fit import prompt_fit
    from harness.plan.arms import plan_arm
    from harness.plan.hours import peak_of
    from harness.plan.memory import GiB, parse_memory
    from harness.plan.table import Hardware, print_gpu_plan, print_plan, print_protocol
    from harness.recipe import load_recipe
    from harness.study.design import check_matched, is_study, load_study
    from harness.train.throughput import GPU_MEMORY_GIB

    peak_of(family, "bf16")  # an unknown family is refused before anything is read
    memory = parse_memory(gpu_memory) if gpu_memory else GPU_MEMORY_GIB[family] * GiB
    hardware = Hardware(gpus=gpus, family=family, memory=memory, mfu=mfu)
    console = stdout_console()
    asked = any(ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
                for name in ("gpus", "family", "gpu_memory", "mfu"))

    def gpu_plan(recipes, plans) -> None:
        # A CPU recipe (fp32, the default) planned for 8 H100s would only print noise and a
        # batch-size warning about GPUs it will never use: its GPU plan is one option away.
        if asked or any(r.train.precision != "fp32" for r in recipes.values()):
            print_gpu_plan(recipes, plans, hardware, console)
        else:
            console.print("memory and time per GPU: add --gpus N (this recipe trains in fp32, as on CPU)",
                          markup=False, highlight=False)

    if is_study(path):
        study = load_study(path, overrides)
        title = f"study {study.config.name}: {study.config.matching.rule}-matched, seeds {study.config.seeds}"
        shorter = {a: f for a, s in study.config.arms.items() if (f := s.schedule_fraction) is not None}
        plans = {a: plan_arm(a, study.recipes[a]) if a in shorter else p for a, p in study.match.arms.items()}
        print_plan(plans, title, study.match, console, shorter)
        print_protocol(study, console)
        gpu_plan(dict(study.recipes), plans)
        check_matched(study)
        arm = study.baseline  # every arm of a comparable study shares data, context and eval settings
        lines = prompt_fit(study.recipes[arm], study.arm_source(arm).parent)
    else:
        from harness.recipe import recipe_warnings

        recipe = load_recipe(path, overrides)
        plans = {recipe.name: plan_arm(recipe.name, recipe)}
        print_plan(plans, f"recipe {path}", None, console)
        gpu_plan({recipe.name: recipe}, plans)
        warnings = recipe_warnings(recipe, overrides, Path(path).parent)
        lines = [f"warning: {w}" for w in warnings] + prompt_fit(recipe, Path(path).parent)
    for line in lines:
        console.print(line, markup=False)


@main.command(short_help="The resolved recipe and its sha256")
@click.argument("path", type=click.Path(dir_okay=False))
@overrides_argument
def resolve(path: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved recipe (extends and overrides applied) and its sha256."""
    from harness.recipe import load_recipe, resolved_yaml

    click.echo(resolved_yaml(load_recipe(path, overrides)), nl=False)


@main.command(short_help="Train, export, evaluate and track one recipe")
@click.argument("path", type=click.Path(dir_okay=False))
@overrides_argument
@click.option("--runs", "runs_root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="where run directories live")
@click.option("--force", multiple=True, metavar="STAGE",
              help="redo a stage even if its inputs are unchanged (plan, data, train, export, evaluate, track)")
@click.option("--verify", is_flag=True,
              help="re-hash corpus files and checkpoints instead of trusting their recorded sizes and times")
@click.option("--relative-to", type=click.Path(file_okay=False), default=None,
              help="where relative paths in the recipe start (default: the recipe's directory)")
@click.option("--local_rank", type=int, default=None, hidden=True, help="set by the deepspeed launcher")
def run(path: str, overrides: tuple[str, ...], runs_root: str, force: tuple[str, ...], verify: bool,
        relative_to: str | None, local_rank) -> None:
    """Train, export, evaluate and track one recipe (resumes where it stopped)."""
    from harness.launch.preemption import early_signals

    with early_signals():  # before the slow imports: Slurm's warning may come in the first seconds
        from harness.recipe import load_recipe, recipe_warnings
        from harness.run.pipeline import Pipeline
        from harness.run.summary import print_run_summary
        from harness.study.design import is_study

        if Path(path).is_file() and is_study(path):
            raise HarnessError(f"{path} is a study file (arms x seeds), not a recipe",
                               fix=f"run it with `harness study {path}`, or plan it with `harness plan {path}`")
        base_dir = Path(relative_to) if relative_to else Path(path).parent
        for warning in recipe_warnings(load_recipe(path, overrides, base_dir=base_dir), overrides, base_dir):
            click.echo(f"warning: {warning}", err=True)
        pipeline = Pipeline(Path(path), overrides, Path(runs_root), force, verify=verify,
                            relative_to=Path(relative_to) if relative_to else None)
        outcome = pipeline.run()
    if pipeline.dist.is_main:
        print_run_summary(outcome, stdout_console())


@main.command(context_settings={"ignore_unknown_options": True}, short_help="Run every arm x seed of a study (resumes)")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@overrides_argument
@click.option("--runs", "runs_root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="where run directories live")
@click.option("--force", multiple=True, metavar="STAGE", help="redo a stage of every run (as `harness run --force`)")
@click.option("--emit-jobs", is_flag=True,
              help="write one Slurm job per arm x seed instead of running here; the remaining options go to "
                   "`harness launch slurm` (e.g. --nodes 2 --gpus-per-node 8 --submit)")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="runs at once, one process each (same runs and numbers; keep workers x train.num_threads <= cores)")
@click.option("--local_rank", type=int, default=None, hidden=True, help="set by the deepspeed launcher")
def study(path: str, overrides: tuple[str, ...], runs_root: str, force: tuple[str, ...], emit_jobs: bool,
          workers: int, local_rank) -> None:
    """Run every arm x seed of a matched study (resumes finished arms), then say where results go."""
    if emit_jobs:
        from harness.launch.cli import slurm

        slurm.main([path, *overrides], prog_name="harness study --emit-jobs", standalone_mode=False)
        return
    options = [o for o in overrides if o.startswith("-")]
    if options:
        raise HarnessError(f"unknown option(s) {' '.join(options)}",
                           fix="Slurm options need --emit-jobs; see `harness study --help`")
    from harness.launch.preemption import early_signals

    with early_signals():  # before the slow imports, and between the runs of the study
        from harness.run.summary import print_study_summary
        from harness.study.runner import run_study

        loaded, done = run_study(path, overrides, Path(runs_root), force, workers=workers)
    if done:  # rank 0 only, under a launcher
        print_study_summary(loaded, done, path, overrides, runs_root, stdout_console())


@main.command(short_help="Make MLflow hold exactly a run directory\'s record")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--force", is_flag=True, help="upload the artifacts again even if already synced")
def sync(run_dir: str, force: bool) -> None:
    """Make MLflow hold exactly a run directory's record (uploads what is missing; idempotent)."""
    from harness.tracking.gateway import run_tracking_uri
    from harness.tracking.record import TrackRecord
    from harness.tracking.sync import sync_run_dir

    run_id = sync_run_dir(Path(run_dir), force=force)
    uri, _ = run_tracking_uri(TrackRecord(Path(run_dir)).state())
    click.echo(f"{run_dir}: synced to {uri} as MLflow run {run_id}")


# Command groups owned by their components, one line each.
from harness.containers.cli import container  # noqa: E402
from harness.data.cli import data  # noqa: E402
from harness.eval.cli import eval_group  # noqa: E402
from harness.launch.cli import launch  # noqa: E402
from harness.report.cli import compare, ui  # noqa: E402

for _command in (data, eval_group, compare, ui, container, launch):
    main.add_command(_command)
