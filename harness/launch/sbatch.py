"""sbatch scripts for one harness run across Slurm nodes, inside the pinned container.

Two launchers, both DeepSpeed underneath (the harness's training engine):
- `srun` (default): one Slurm task per GPU; each task execs `harness run` through
  `python -m harness.launch.slurm_env`, which derives RANK/WORLD_SIZE/MASTER_ADDR from
  Slurm's variables. Slurm's warning signal reaches every rank directly.
- `torchrun`: one task per node running torchrun with c10d rendezvous on the first node;
  torchrun is told to forward SIGUSR1 to its workers and to wait for their checkpoint.
Containers: pyxis/enroot (`srun --container-image`) or `apptainer exec`; none runs the
harness installed on the nodes. Preemption: `--signal=USR1@<s>` -> the loop checkpoints,
writes the marker file and exits -> the script runs `scontrol requeue` -> the job resumes.

Before the ranks start, one task prepares the data (`harness data prepare`) into a cache on
a path every node mounts (`MTP_HARNESS_CACHE`, default WORKDIR/.cache/mtp-harness): no rank
waits in a collective while rank 0 tokenizes, and a requeue finds the data prepared instead
of rebuilding it in a throwaway container (pyxis mounts no home). Nodes are taken whole
(`--exclusive`, `--mem=0`) with 8 cores per GPU unless told otherwise; the ranks must find
CUDA (`MTP_HARNESS_DEVICE=cuda`) and NCCL errors end the step instead of hanging it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.containers import IMAGE_ENV
from harness.launch.preemption import PREEMPT_FILE_ENV, PREEMPTED_EXIT
from harness.launch.slurm_env import PORT_BASE, PORT_SPAN

_SLURM_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{2}){0,2}|\d+(:\d{2}){0,2})$")


class SlurmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: int = Field(ge=1)
    gpus_per_node: int = Field(ge=1)
    cpus_per_gpu: int = Field(default=8, ge=1, description="cores per GPU: data loading, tokenizing, sandboxed programs")
    exclusive: bool = Field(default=True, description="whole nodes (--exclusive, --mem=0): no neighbour's job "
                            "shares the GPUs' PCIe/NIC or takes the memory a 7B checkpoint save needs")
    cache: str | None = Field(default=None, description="MTP_HARNESS_CACHE for the job, on a path every node "
                              "mounts; None: WORKDIR/.cache/mtp-harness")
    partition: str | None = None
    time: str | None = Field(default=None, description="Slurm time limit: MM, HH:MM:SS, D-HH:MM, ...")
    account: str | None = None
    container: str | None = Field(default=None, description="image for pyxis (docker://..., a .sqsh) or apptainer (.sif)")
    runtime: Literal["pyxis", "apptainer"] = "pyxis"
    launcher: Literal["srun", "torchrun"] = "srun"
    signal_seconds: int = Field(default=300, ge=60, description="warning before the end: time to checkpoint")
    mounts: tuple[str, ...] = Field(default=(), description="extra host paths visible at the same path inside")
    requeue: bool = True

    @field_validator("time")
    @classmethod
    def _slurm_time(cls, value: str | None) -> str | None:
        if value is not None and not _SLURM_TIME.match(value):
            raise ValueError(f"{value!r} is not a Slurm time (MM, HH:MM:SS, D-HH, D-HH:MM:SS)")
        return value

    @field_validator("cache")
    @classmethod
    def _absolute_cache(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or any(c in value for c in ",: ")):
            raise ValueError(f"cache {value!r} must be an absolute path without commas, colons or spaces")
        return value

    @field_validator("mounts")
    @classmethod
    def _plain_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/") or any(c in path for c in ",: "):
                raise ValueError(f"mount {path!r} must be an absolute path without commas, colons or spaces")
        return value


@dataclass(frozen=True)
class Job:
    """One sbatch script: a resolved recipe run from a job directory. `base_dir` is the
    directory of the recipe file it was resolved from: relative paths in the recipe (a local
    corpus, a tokenizer) keep meaning what they meant there (`harness run --relative-to`)."""

    name: str
    directory: Path
    recipe: Path
    recipe_sha256: str
    base_dir: Path


def _header(job: Job, o: SlurmOptions) -> list[str]:
    tasks = o.gpus_per_node if o.launcher == "srun" else 1
    lines = [
        f"#SBATCH --job-name={job.name}",
        f"#SBATCH --nodes={o.nodes}",
        f"#SBATCH --ntasks-per-node={tasks}",
        f"#SBATCH --gpus-per-node={o.gpus_per_node}",
        f"#SBATCH --output={job.directory}/slurm-%j.out",
        "#SBATCH --open-mode=append",
        f"#SBATCH --signal=USR1@{o.signal_seconds}",
    ]
    per_task = o.cpus_per_gpu * (o.gpus_per_node if o.launcher == "torchrun" else 1)
    lines.append(f"#SBATCH --cpus-per-task={per_task}")
    if o.exclusive:
        lines += ["#SBATCH --exclusive", "#SBATCH --mem=0"]  # --mem=0: all of each node's memory
    lines += [f"#SBATCH --{key}={value}" for key, value in
              (("partition", o.partition), ("time", o.time), ("account", o.account)) if value]
    lines.append("#SBATCH --requeue" if o.requeue else "#SBATCH --no-requeue")
    return lines


def _container_args(o: SlurmOptions) -> tuple[list[str], list[str]]:
    """(srun options, command prefix) that put the step inside the image."""
    if o.container is None:
        return [], []
    if o.runtime == "pyxis":
        return ['--container-image="$IMAGE"', '--container-mounts="$MOUNTS"',
                '--container-workdir="$WORKDIR"', "--no-container-mount-home"], []
    binds = ['--bind "$MOUNTS"', '--pwd "$WORKDIR"']
    return [], ["apptainer exec --nv", *binds, '"$IMAGE"']


RUN_ARGS = '"$RECIPE" --relative-to "$RECIPE_BASE"'


def _command(o: SlurmOptions) -> list[str]:
    if o.launcher == "srun":
        return [f"python -m harness.launch.slurm_env harness run {RUN_ARGS}"]
    return [
        f"torchrun --nnodes=\"$SLURM_JOB_NUM_NODES\" --nproc-per-node={o.gpus_per_node}",
        '--rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv-id="$SLURM_JOB_ID"',
        "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1",
        f"--shutdown-timeout={max(o.signal_seconds - 30, 30)}",
        f"-m harness run {RUN_ARGS}",
    ]


def cache_path(o: SlurmOptions, workdir: Path) -> Path:
    """The job's data cache: asked for (`--cache`), else under the workdir, which every node
    mounts already (the run directories are written there). Not this shell's
    MTP_HARNESS_CACHE: a login node's cache is often in a home the containers do not mount."""
    return Path(o.cache) if o.cache else workdir / ".cache" / "mtp-harness"


# Exported with `${VAR:-default}`, so a cluster's own settings (module files, the user's
# shell) win. NCCL's interface and HCA choices are site-specific and left to the site.
JOB_ENV = (
    ("MTP_HARNESS_DEVICE", "cuda", "every rank on its GPU, or a one-line refusal (no CPU fallback)"),
    ("MTP_HARNESS_COLLECTIVE_TIMEOUT", "60", "minutes a collective waits for the slowest rank"),
    ("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", "a failed or timed-out NCCL collective ends the step, not hangs it"),
    ("NCCL_DEBUG", "WARN", "NCCL's own reason in slurm-<job>.out when it fails"),
)


def _body(job: Job, o: SlurmOptions, workdir: Path) -> list[str]:
    cache = cache_path(o, workdir)
    extra = [str(p) for p in (job.base_dir, cache) if not p.is_relative_to(workdir)]
    mounts = ",".join(f"{p}:{p}" for p in dict.fromkeys((str(workdir), *extra, *o.mounts)))
    lines = [
        "set -euo pipefail",
        "",
        f"WORKDIR={shlex.quote(str(workdir))}",
        f"JOB_DIR={shlex.quote(str(job.directory))}",
        f"RECIPE={shlex.quote(str(job.recipe))}",
        f"RECIPE_BASE={shlex.quote(str(job.base_dir))}  # relative paths in the recipe start here",
        f"export {PREEMPT_FILE_ENV}=\"$JOB_DIR/preempted.$SLURM_JOB_ID\"",
        f"PREEMPTED_EXIT={PREEMPTED_EXIT}",
        f"export MTP_HARNESS_CACHE={shlex.quote(str(cache))}  # on a path every node mounts",
        *(f'export {name}="${{{name}:-{value}}}"  # {why}' for name, value, why in JOB_ENV),
    ]
    if o.container is not None:
        lines += [f"IMAGE={shlex.quote(o.container)}", f"MOUNTS={shlex.quote(mounts)}",
                  "# Recorded in the run's tags, as `harness container run` does.",
                  f'export {IMAGE_ENV}="$IMAGE"']
    if o.launcher == "torchrun":
        # `sed -n 1p`, not `head -n 1`: head exits after one line, scontrol then dies of SIGPIPE
        # on a multi-node list, and under `set -o pipefail` the job ends with status 141.
        lines += ['MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
                  f"MASTER_PORT=$(({PORT_BASE} + SLURM_JOB_ID % {PORT_SPAN}))"]
    lines += [
        'cd "$WORKDIR"',
        f'rm -f "${PREEMPT_FILE_ENV}"  # a requeued job keeps its id: drop the last marker',
        'echo "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST at $(date -Is)"',
        'mkdir -p "$MTP_HARNESS_CACHE"',
        "",
    ]
    return lines


def _launch(o: SlurmOptions) -> list[str]:
    srun_opts, prefix = _container_args(o)
    # --kill-on-bad-exit: one crashed rank ends the step instead of leaving the rest waiting
    # in a collective; preempted ranks exit only after a barrier past the checkpoint.
    parts = ["srun --kill-on-bad-exit=1", *srun_opts, *prefix, *_command(o)]
    call = " \\\n    ".join(parts)
    prepare = " \\\n    ".join(["srun --kill-on-bad-exit=1 --nodes=1 --ntasks=1", *srun_opts, *prefix,
                                   f"harness data prepare {RUN_ARGS}"])
    return [
        "status=0",
        "# One task prepares the data (or finds it in the cache) before the ranks start.",
        f"{prepare} || status=$?",
        'if [ "$status" -eq 0 ]; then',
        "    " + f"{call} || status=$?".replace("\n", "\n    "),
        "fi",
        "",
        f'if [ -e "${PREEMPT_FILE_ENV}" ]; then',
        '    echo "preempted ($(cat "$' + PREEMPT_FILE_ENV + '")): checkpoint saved; requeueing job $SLURM_JOB_ID"',
        f'    rm -f "${PREEMPT_FILE_ENV}"',
        '    scontrol requeue "$SLURM_JOB_ID"',
        "    exit 0",
        "fi",
        'if [ "$status" -eq "$PREEMPTED_EXIT" ]; then',
        '    echo "the run stopped for preemption but left no marker; not requeued" >&2',
        "fi",
        'exit "$status"',
    ]


def render_sbatch(job: Job, options: SlurmOptions, workdir: Path, title: str) -> str:
    """The complete script; it passes `bash -n` and shellcheck (tests run both)."""
    from harness import __version__

    intro = [
        "#!/bin/bash",
        f"# Generated by `harness launch slurm` (mtp-harness {__version__}): {title}.",
        f"# Recipe: {job.recipe} (sha256 {job.recipe_sha256}).",
        f"# {options.nodes} node(s) x {options.gpus_per_node} GPU(s), launcher {options.launcher}, "
        f"container {options.container or 'none'}" + (f" via {options.runtime}." if options.container else "."),
    ]
    lines = intro + _header(job, options) + [""] + _body(job, options, workdir) + _launch(options)
    return "\n".join(lines) + "\n"
