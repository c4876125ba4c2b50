"""DeepSpeed hostfiles for multi-node runs without Slurm (`deepspeed --hostfile F`).

Format (DeepSpeed's launcher/runner.py): one `hostname slots=N` line per node, N being the
GPUs (processes) on it; lines starting with # are comments.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.launch.slurm_env import expand_hostlist


def render_hostfile(hostlist: str, slots: int) -> str:
    """`gpu[01-02]`, 8 -> "gpu01 slots=8\\ngpu02 slots=8\\n"; duplicates are an error."""
    if slots < 1:
        raise HarnessError(f"slots {slots}: every host needs at least one slot")
    hosts = expand_hostlist(hostlist)
    if not hosts:
        raise HarnessError("the host list is empty", fix="name hosts, e.g. --hosts 'gpu[01-04]'")
    duplicates = sorted({h for h in hosts if hosts.count(h) > 1})
    if duplicates:
        raise HarnessError(f"hosts listed twice: {', '.join(duplicates)}")
    return "".join(f"{host} slots={slots}\n" for host in hosts)
