"""`harness launch ...`: parse options and delegate to the job planner and renderers."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.group("launch", short_help="Slurm jobs and DeepSpeed hostfiles")
def launch() -> None:
    """Multi-node jobs: Slurm scripts (DeepSpeed/torchrun inside the container), hostfiles."""


@launch.command(context_settings={"ignore_unknown_options": True})
@click.argument("path", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE | ~KEY]...")
@click.option("--nodes", type=int, required=True)
@click.option("--gpus-per-node", type=int, required=True)
@click.option("--cpus-per-gpu", type=int, default=8, show_default=True, help="CPU cores per GPU")
@click.option("--shared-nodes", is_flag=True, help="do not take whole nodes (default: --exclusive and --mem=0)")
@click.option("--cache", help="data cache on a path every node mounts (default: WORKDIR/.cache/mtp-harness)")
@click.option("--partition")
@click.option("--time", "time_limit", help="time limit, e.g. 2-00:00:00")
@click.option("--account")
@click.option("--container", help="image: pyxis (docker://REGISTRY#IMAGE, a .sqsh) or apptainer (.sif)")
@click.option("--runtime", type=click.Choice(["pyxis", "apptainer"]), default="pyxis", show_default=True)
@click.option("--launcher", type=click.Choice(["srun", "torchrun"]), default="srun", show_default=True,
              help="srun: one Slurm task per GPU; torchrun: one per node, c10d rendezvous")
@click.option("--signal-seconds", type=int, default=300, show_default=True,
              help="SIGUSR1 this long before the end, to checkpoint")
@click.option("--mount", "mounts", multiple=True, help="host path visible at the same path in the container (repeat)")
@click.option("--no-requeue", is_flag=True, help="do not requeue after a preemption")
@click.option("--out", "jobs_root", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/jobs"),
              show_default=True, help="where job directories go")
@click.option("--dry-run", is_flag=True, help="print the scripts; write nothing")
@click.option("--submit", is_flag=True, help="write the scripts and sbatch them")
def slurm(path: str, overrides: tuple[str, ...], dry_run: bool, submit: bool, jobs_root: Path,
          no_requeue: bool, time_limit: str | None, shared_nodes: bool, **options) -> None:
    """sbatch script(s) for a recipe, or one per arm x seed of a study."""
    from pydantic import ValidationError

    from harness.errors import HarnessError, one_line
    from harness.launch.jobs import plan_jobs, write_jobs
    from harness.launch.jobs import submit as submit_jobs
    from harness.launch.sbatch import SlurmOptions

    if dry_run and submit:
        raise HarnessError("--dry-run and --submit contradict each other", fix="give one of them")
    try:
        slurm_options = SlurmOptions(**options, time=time_limit, requeue=not no_requeue, exclusive=not shared_nodes)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise HarnessError(f"--{str(error['loc'][0]).replace('_', '-')}: {one_line(error['msg'])}") from None
    planned = plan_jobs(path, overrides, slurm_options, jobs_root, Path.cwd())
    if dry_run:
        for item in planned:
            click.echo(f"# ---- {item.script_path} (with {item.job.recipe})")
            click.echo(item.script)
        return
    write_jobs(planned)
    for item in planned:
        click.echo(f"wrote {os.path.relpath(item.script_path)}")
    if submit:
        for item, job_id in zip(planned, submit_jobs(planned)):
            click.echo(f"submitted {item.job.name}: job {job_id}")
    else:
        click.echo("submit with: " + "; ".join(f"sbatch {os.path.relpath(i.script_path)}" for i in planned))


@launch.command()
@click.option("--hosts", help="Slurm hostlist, e.g. 'gpu[01-04]' (default: $SLURM_JOB_NODELIST)")
@click.option("--slots", type=int, required=True, help="GPUs (processes) per host")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="file (default: stdout)")
def hostfile(hosts: str | None, slots: int, output: Path | None) -> None:
    """A DeepSpeed hostfile for multi-node runs without Slurm (`deepspeed --hostfile`)."""
    from harness.errors import HarnessError
    from harness.launch.hostfile import render_hostfile

    hosts = hosts or os.environ.get("SLURM_JOB_NODELIST")
    if not hosts:
        raise HarnessError("no hosts given and SLURM_JOB_NODELIST is not set", fix="pass --hosts 'node[01-04]'")
    text = render_hostfile(hosts, slots)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")
