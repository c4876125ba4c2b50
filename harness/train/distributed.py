"""Process-group setup: one CPU process with gloo by default, a launcher's ranks otherwise.

`deepspeed`/`torchrun` set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; under Slurm
without a launcher the ranks come from Slurm's variables; with neither we are one process.
Values are only ever `setdefault`, so a launcher always wins.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Dist:
    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_environment() -> Dist:
    """Fill in the rank variables (launcher > Slurm > single process) and report them."""
    if "RANK" not in os.environ and "SLURM_PROCID" in os.environ:
        from harness.launch.slurm_env import rank_env_from_slurm

        for key, value in rank_env_from_slurm(os.environ).items():
            os.environ.setdefault(key, value)
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(free_port())
    return Dist(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))


def init_distributed() -> Dist:
    """Start the process group once (gloo on CPU, nccl on GPUs) through DeepSpeed."""
    import torch

    dist = rank_environment()
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    # DeepSpeed logs every engine detail at INFO; ZeRO's use of soon-renamed collectives
    # warns on every step. Neither is actionable for a harness user.
    deepspeed.utils.logger.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    # DeepSpeed JIT-compiles its shared-memory comm op for CPU at init (~1 min on a fresh
    # machine, docs/MEASURED.md); gloo does the same job for us, so mark the op unusable.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo",
                                   auto_mpi_discovery=False, verbose=False)
    return dist


def barrier() -> None:
    import torch.distributed as td

    if td.is_available() and td.is_initialized() and td.get_world_size() > 1:
        td.barrier()


def broadcast_object(value=None, src: int = 0):
    """`value` from rank `src` on every rank (a picklable object); itself when alone."""
    import torch.distributed as td

    if not (td.is_available() and td.is_initialized() and td.get_world_size() > 1):
        return value
    box = [value]
    td.broadcast_object_list(box, src=src)
    return box[0]


def all_gather(value) -> list:
    """Every rank's `value`, in rank order; `[value]` when alone."""
    import torch.distributed as td

    if not (td.is_available() and td.is_initialized() and td.get_world_size() > 1):
        return [value]
    out = [None] * td.get_world_size()
    td.all_gather_object(out, value)
    return out
