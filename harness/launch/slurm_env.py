"""Rank environment from Slurm's: RANK, WORLD_SIZE, MASTER_ADDR, ... for ranks started by srun.

When every GPU is its own Slurm task (`srun --ntasks-per-node=G`), no launcher sets the
variables torch.distributed and DeepSpeed read; Slurm sets its own instead. This module
translates them. Run as `python -m harness.launch.slurm_env CMD ...` it sets them and execs
CMD (the generated sbatch scripts do this), so signals from Slurm reach CMD directly.

Hostlists (`gpu[01-03,7],cpu5`) are expanded here by hand: python-hostlist, the maintained
library for it, is GPL-2.0+, which an MIT package should not link; the grammar is small
(comma-separated names, each with bracketed ranges that keep the lower bound's zero padding).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Mapping

from harness.errors import HarnessError

# Rendezvous ports are derived from the job id so that concurrent jobs sharing a node do not
# collide, and stay below Linux's ephemeral range (32768+), which outgoing sockets use.
PORT_BASE = 10000
PORT_SPAN = 20000


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise HarnessError(f"hostlist {text!r}: unbalanced ']'")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise HarnessError(f"hostlist {text!r}: unbalanced '['")
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def _expand_range(item: str, hostlist: str) -> list[str]:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
    if not match:
        raise HarnessError(f"hostlist {hostlist!r}: bad range {item!r}")
    lo, hi = match.group(1), match.group(2) or match.group(1)
    if int(hi) < int(lo):
        raise HarnessError(f"hostlist {hostlist!r}: range {item!r} runs backwards")
    width = len(lo) if lo.startswith("0") else 0  # Slurm pads to the lower bound's width
    return [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]


def _expand_name(name: str, hostlist: str) -> list[str]:
    """`rack[1-2]-n[01-02]` -> every combination, in order."""
    match = re.search(r"\[([^\[\]]*)\]", name)
    if not match:
        return [name]
    head, tail = name[: match.start()], name[match.end():]
    numbers = [n for item in match.group(1).split(",") for n in _expand_range(item, hostlist)]
    return [head + n + rest for n in numbers for rest in _expand_name(tail, hostlist)]


def expand_hostlist(hostlist: str) -> list[str]:
    """Slurm's compressed hostlist as a list of host names, in Slurm's order."""
    return [host for name in _split_top_level(hostlist) for host in _expand_name(name, hostlist)]


def tasks_per_node(value: str) -> list[int]:
    """SLURM_TASKS_PER_NODE (`4(x2),3`) as one count per node."""
    counts = []
    for part in value.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not match:
            raise HarnessError(f"SLURM_TASKS_PER_NODE {value!r}: cannot read {part!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def _need(environ: Mapping[str, str], *names: str) -> str:
    for name in names:
        if environ.get(name):
            return environ[name]
    raise HarnessError(f"{' or '.join(names)} is not set, so the rank cannot be derived from Slurm",
                       fix="start the command with srun inside an allocation, or set RANK/WORLD_SIZE yourself")


def _int(environ: Mapping[str, str], *names: str) -> int:
    value = _need(environ, *names)
    if not value.isdigit():
        raise HarnessError(f"{names[0]}={value!r} is not a number")
    return int(value)


def rank_env_from_slurm(environ: Mapping[str, str]) -> dict[str, str]:
    """RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT.

    The step's variables win over the job's (a step may use part of the allocation).
    MASTER_ADDR and MASTER_PORT already in `environ` are kept: the user chose them.
    """
    rank = _int(environ, "SLURM_PROCID")
    world = _int(environ, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS")
    local_rank = _int(environ, "SLURM_LOCALID")
    node_rank = _int(environ, "SLURM_NODEID")
    hosts = expand_hostlist(_need(environ, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"))
    counts = tasks_per_node(_need(environ, "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"))
    if not (0 <= rank < world) or node_rank >= len(counts) or not (0 <= local_rank < counts[node_rank]):
        raise HarnessError(f"inconsistent Slurm environment: rank {rank} of {world}, local rank {local_rank}, "
                           f"node {node_rank} of tasks per node {counts}")
    port = environ.get("MASTER_PORT") or str(PORT_BASE + _int(environ, "SLURM_JOB_ID") % PORT_SPAN)
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(local_rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(counts[node_rank]),
        "NODE_RANK": str(node_rank),
        "MASTER_ADDR": environ.get("MASTER_ADDR") or hosts[0],
        "MASTER_PORT": port,
    }


def main(argv: list[str]) -> None:
    """`python -m harness.launch.slurm_env CMD ...`: set the rank environment, exec CMD."""
    if not argv:
        raise SystemExit("usage: python -m harness.launch.slurm_env COMMAND [ARGS...]")
    try:
        ranks = rank_env_from_slurm(os.environ)
    except HarnessError as exc:
        raise SystemExit(f"error: {exc}") from None
    os.environ.update(ranks)
    # One thread pool per rank of the task's CPUs, unless the user chose.
    os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
