"""The processes of one job: which rank this is, and the few collectives the harness needs
(a barrier, an object from rank 0, every rank's object, and "rank 0 decides, every rank
learns the outcome"). Torch is imported only inside the collectives, and with one process
each is a no-op, so every floor may use them (data preparation, checkpoints, the pipeline).

`deepspeed`/`torchrun` set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; under Slurm
without a launcher the ranks come from Slurm's variables; with neither we are one process.
Values are only ever `setdefault`, so a launcher always wins.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Callable, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


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


def group_device():
    """Where a collective's tensors must sit: NCCL has no CPU path and works on the current
    CUDA device (set to the local rank's before the group starts: `train.distributed`);
    gloo, or no group, on the CPU."""
    import torch
    import torch.distributed as td

    if td.is_available() and td.is_initialized() and td.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def group_size() -> tuple[int, int]:
    """(rank, world size) of the process group in use; (0, 1) without one. Every collective
    below is a no-op at world size 1."""
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        return td.get_rank(), td.get_world_size()
    return 0, 1


def barrier() -> None:
    import torch.distributed as td

    if group_size()[1] > 1:
        td.barrier()


def broadcast_object(value=None, src: int = 0):
    """`value` from rank `src` on every rank (a picklable object); itself when alone."""
    import torch.distributed as td

    if group_size()[1] == 1:
        return value
    box = [value]
    td.broadcast_object_list(box, src=src)
    return box[0]


def all_gather(value) -> list:
    """Every rank's `value`, in rank order; `[value]` when alone."""
    import torch.distributed as td

    world = group_size()[1]
    if world == 1:
        return [value]
    out = [None] * world
    td.all_gather_object(out, value)
    return out


def gather_to_main(value) -> list | None:
    """Every rank's `value` in rank order on rank 0, None on the others; `[value]` when alone.
    (A gather, not an all-gather: rank 0 alone needs the rows of a sharded evaluation.)"""
    import torch.distributed as td

    rank, world = group_size()
    if world == 1:
        return [value]
    out = [None] * world if rank == 0 else None
    td.gather_object(value, out, dst=0)
    return out


def main_decides(work: Callable[[], T], *, is_main: bool, what: str = "rank 0") -> T:
    """Rank 0 does `work()`; every rank returns its result, or fails (or stops) as rank 0 did:
    rank 0's HarnessError is raised again on every rank, a stop by a signal stops every rank
    (`launch.preemption.Stopped`), any other failure is a HarnessError naming it on the other
    ranks (rank 0 raises the original). Alone, this is `work()`."""
    from harness.launch.preemption import Preemption, Stopped

    outcome = None
    if is_main:
        try:
            outcome = ("done", work())
        except Stopped as stop:
            broadcast_object(("stopped", stop.preemption.received))
            raise
        except HarnessError as exc:
            broadcast_object(("error", exc))
            raise
        except Exception as exc:
            broadcast_object(("failed", f"{type(exc).__name__}: {exc}"))
            raise
    outcome = broadcast_object(outcome)
    kind, value = outcome
    if kind == "done":
        return value
    if kind == "stopped":
        preemption = Preemption()
        preemption.received = value
        raise Stopped(preemption)
    if kind == "error":
        raise value
    raise HarnessError(f"{what} failed: {value}")
