"""The sandbox's limits (`eval.sandbox:` in a recipe): pure data, so reading a recipe loads no
sandbox runtime."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SandboxConfig(BaseModel):
    """Limits per program. Defaults are generous for HumanEval/MBPP on a loaded 2-core laptop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["auto", "bwrap", "unshare"] = Field(
        default="auto", description="auto: bwrap, else unshare (root only); no isolation is a CLI flag, never a recipe value"
    )
    # MBPP 123's reference solution needs 4-9 s on a loaded 2-core machine; 20 s keeps every
    # canonical solution passing without letting an infinite loop cost much.
    timeout_s: float = Field(default=20.0, gt=0, description="wall-clock seconds per program; the process tree is killed")
    cpu_s: int | None = Field(default=None, ge=1, description="RLIMIT_CPU per process; None: timeout_s rounded up")
    memory_mb: int = Field(
        default=2048, ge=64,
        description="MB for the whole sandbox (its cgroup: processes, tmpfs, shm, kernel memory); "
        "also RLIMIT_AS per process",
    )  # fmt: skip
    max_processes: int = Field(default=64, ge=1, description="tasks (threads count too): cgroup pids.max and RLIMIT_NPROC")
    max_file_mb: int = Field(default=16, ge=1, description="RLIMIT_FSIZE, largest file a program may write")
    max_open_files: int = Field(default=64, ge=16, description="RLIMIT_NOFILE")
    tmpfs_mb: int = Field(default=64, ge=1, description="size of each private tmpfs: /tmp (the working directory), /dev/shm")
    output_kb: int = Field(default=64, ge=1, description="stderr kept per program (the tail), for error reasons")
    value_kb: int = Field(default=4096, ge=1, description="largest value one call may return to the checker")
    workers: int | None = Field(default=None, ge=1, description="programs run in parallel; None: one per CPU (of this rank's share of the node)")
    python: str | None = Field(
        default=None, description="interpreter for programs (Python >= 3.9); None: the one running the harness"
    )
    uid_base: int = Field(
        default=1_900_000_000, ge=1,
        description="as root, each program runs as a uid from uid_base up, locked against every other harness "
        "process on the host (identities.py): uids no one else may use",
    )  # fmt: skip
    cgroups: Literal["auto", "required", "off"] = Field(
        default="auto", description="one cgroup per program; required: refuse without; off: rlimits only (tests)"
    )
