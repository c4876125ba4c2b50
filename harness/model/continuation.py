"""Batched greedy continuation: many prompts extended at once by the next-token path.

The decoding paths (`decoding.py`) follow one sequence, since speculative decoding accepts a
different number of tokens per sequence. Continuing prompts of one length by a fixed number
of tokens keeps every row in step, so the whole batch shares one KV-cached stack
(`kv_cache.CachedStack` with a batch dimension): the prompt in one forward, then one token per
row per step. Self-distillation data (`harness/train/self_distill.py`) is made this way.
"""

from __future__ import annotations

import torch

from harness.model.kv_cache import CachedStack
from harness.model.mtp_model import MTPModel


@torch.no_grad()
def greedy_continuation(model: MTPModel, prompts: torch.Tensor, length: int) -> torch.Tensor:
    """(B, P) prompt ids -> (B, length) rows: the prompt, then the argmax of the next-token
    logits, each chosen token fed back (first index on ties, as `decoding.greedy`)."""
    B, P = prompts.shape
    if not 0 < P < length:
        raise ValueError(f"prompts of {P} tokens cannot be continued to {length}")
    trunk = model.trunk
    stack = CachedStack(model.next_token_layers(), trunk.rope(length), batch=B)
    out = torch.empty(B, length, dtype=torch.long, device=prompts.device)
    out[:, :P] = prompts
    h = stack(trunk.embed(prompts))[:, -1:]  # (B, 1, d): the last prompt position
    for t in range(P, length):
        out[:, t] = trunk.logits(h)[:, 0].argmax(dim=-1)
        if t + 1 < length:  # the last token is kept, never fed
            h = stack(trunk.embed(out[:, t : t + 1]))
    return out
