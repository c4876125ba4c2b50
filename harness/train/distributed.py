"""Process-group setup through DeepSpeed: one CPU process with gloo by default, a launcher's
ranks otherwise (which rank this is: `harness.ranks`)."""

from __future__ import annotations

import logging
import os
import warnings

from harness.ranks import Dist, rank_environment


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
