"""torch's thread count, set for a block and restored after it.

The count changes the last bits of results (ENV-NOTES), and it is per process: a study runs
every arm in one process, so a count one stage sets must not leak into the next arm."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def torch_threads(n: int | None):
    """Use `n` threads inside the block (None: leave the count alone), then the previous count."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
