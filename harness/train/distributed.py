"""Process-group setup through DeepSpeed: one CPU process with gloo by default, a launcher's
ranks otherwise (which rank this is: `harness.ranks`; which device: `harness.devices`)."""

from __future__ import annotations

import logging
import os
import warnings
from datetime import timedelta

from harness import devices
from harness.errors import HarnessError
from harness.ranks import Dist, rank_environment

# Collectives wait this long for the slowest rank before the job fails. DeepSpeed's default
# is 10 minutes, shorter than rank 0 hashing a large corpus or converting a checkpoint while
# the others wait; a cluster where that is still too short sets it (minutes).
TIMEOUT_ENV = "MTP_HARNESS_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_MIN = 60


def collective_timeout() -> timedelta:
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_MIN))
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if minutes <= 0:
        raise HarnessError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of minutes",
                           fix=f"set {TIMEOUT_ENV} to minutes, e.g. {DEFAULT_TIMEOUT_MIN}")
    return timedelta(minutes=minutes)


def init_distributed(precision: str = "fp32") -> Dist:
    """Start the process group once (gloo on CPU, nccl on GPUs) through DeepSpeed, after
    pinning this process to its GPU: NCCL's collectives (broadcast_object_list among them)
    use the current device, which is cuda:0 on every rank until set."""
    import torch

    dist = rank_environment()
    device = devices.choose(precision, dist.world_size, dist.local_rank)
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    else:
        torch.cuda.set_device(torch.device(device))
    import deepspeed

    # DeepSpeed logs every engine detail at INFO; ZeRO's use of soon-renamed collectives
    # warns on every step. Neither is actionable for a harness user.
    deepspeed.utils.logger.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    # DeepSpeed JIT-compiles its shared-memory comm op for CPU at init (~1 min on a fresh
    # machine, docs/MEASURED.md); gloo does the same job for us, so mark the op unusable.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="gloo" if device == "cpu" else "nccl", auto_mpi_discovery=False,
                                   verbose=False, timeout=collective_timeout())
    return dist
