"""Which device this rank computes on, and the one way a tensor gets onto it.

DeepSpeed moves the module to its device (`engine.device`) but never the inputs, so every
batch that reaches the engine goes through `to_device`; collectives have their own rule
(`ranks.group_device`). The device is chosen, never fallen back to: CUDA when torch sees it;
the CPU for the laptop case (one process, fp32) or when asked for by name. A bf16/fp16 or
multi-process run without CUDA is refused, because on a cluster it means a broken driver,
container or allocation, and 64 ranks of gloo on CPU would burn the allocation silently.

`MTP_HARNESS_DEVICE` (not a recipe field: where a run computes is not part of what it is):
    auto  CUDA when available, else the CPU for one fp32 process (the default)
    cuda  CUDA or a refusal (the generated Slurm scripts set it)
    cpu   the CPU whatever is present (tests, two CPU ranks on a laptop, bf16 on CPU)
"""

from __future__ import annotations

import os

from harness.errors import HarnessError

DEVICE_ENV = "MTP_HARNESS_DEVICE"
CHOICES = ("auto", "cuda", "cpu")


def requested() -> str:
    value = os.environ.get(DEVICE_ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise HarnessError(f"{DEVICE_ENV}={value!r} is not one of {', '.join(CHOICES)}",
                           fix=f"set {DEVICE_ENV} to auto, cuda or cpu")
    return value


def choose(precision: str, world_size: int, local_rank: int) -> str:
    """'cuda:<local rank>' or 'cpu' for this rank, or a one-line refusal."""
    import torch

    wanted = requested()
    if wanted == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise HarnessError(
                f"local rank {local_rank} but this process sees {count} CUDA device(s) "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})",
                fix="give every process of a node all of the node's GPUs (no per-task GPU binding) "
                    "or start one process per visible GPU")
        return f"cuda:{local_rank}"
    why = (f"{DEVICE_ENV}=cuda" if wanted == "cuda" else f"train.precision={precision}" if precision != "fp32"
           else f"a {world_size}-process run")
    if wanted == "cuda" or precision != "fp32" or world_size > 1:
        raise HarnessError(
            f"{why} asks for GPUs but torch sees no CUDA device (torch {torch.__version__}, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); not falling back to CPU",
            fix="run where `python -c 'import torch; print(torch.cuda.is_available())'` prints True "
                f"(a CUDA build of torch, GPUs allocated, the container started with GPUs), "
                f"or set {DEVICE_ENV}=cpu to run on CPU on purpose")
    return "cpu"


def to_device(tensor, device):
    """`tensor` on `device`; from pinned memory without blocking when it goes to a GPU, so
    the copy overlaps the kernels already queued."""
    import torch

    device = torch.device(device)
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def use_tf32(precision: str, device) -> bool:
    """Let fp32 matrix products use TF32 tensor cores on a GPU (Ampere and later: ~8x the
    fp32 peak, 10-bit mantissa inside the product, fp32 accumulation); bf16/fp16 recipes and
    the CPU are left alone. Returns whether TF32 is on, which sets the peak MFU is taken at."""
    import torch

    if precision != "fp32" or torch.device(device).type != "cuda":
        return False
    # The per-backend setting (torch >= 2.9); mixing it with the older allow_tf32 flags raises.
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    return True


def inference_dtype(device) -> str:
    """The dtype evaluation loads weights in: bf16 on a GPU that has it (generation is
    memory-bound; the exports are fp32), fp32 on the CPU, where bf16 is no faster here
    (docs/MEASURED.md) and the numbers stay those of every earlier CPU run."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def device_of(module):
    """Where a module's weights live (its first parameter's device)."""
    return next(module.parameters()).device
