"""KV-cached incremental forward of trunk blocks: the inference machinery of decoding.

Training never uses this: it runs whole rows under `is_causal`. Decoding feeds a few
positions at a time (one token for plain greedy decoding, a drafted block for speculative
decoding), so each attention layer keeps the keys and values of the positions it has seen.
Caches are preallocated for `max_len` positions: appending is a copy, and rolling back
rejected draft positions is setting `length`, which speculative decoding does every step.

Hand-written rather than transformers' `DynamicCache` because the objectives' extra blocks
(Meta's heads, DeepSeek's modules) are our own modules, not a Hugging Face model, and
because rollback by length is all we need.
"""

from __future__ import annotations

import torch
from torch import nn


class KVCache:
    """Keys and values of one attention layer for positions 0..length-1."""

    def __init__(self, batch: int, n_kv_heads: int, head_dim: int, max_len: int, dtype, device=None):
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.k = torch.empty(shape, dtype=dtype, device=device)  # (B, h_kv, max_len, hd)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor):
        """Store the T new positions' k, v (B, h_kv, T, hd); return all keys, all values
        (B, h_kv, P+T, hd) and the (T, P+T) boolean mask under which new position i sees
        positions <= P+i (None when T=1: it sees everything)."""
        P, T = self.length, k.shape[2]
        if P + T > self.k.shape[2]:
            raise ValueError(f"KV cache holds {self.k.shape[2]} positions; {P} + {T} do not fit")
        self.k[:, :, P : P + T] = k
        self.v[:, :, P : P + T] = v
        self.length = P + T
        mask = None if T == 1 else torch.ones(T, P + T, dtype=torch.bool, device=k.device).tril(P)
        return self.k[:, :, : P + T], self.v[:, :, : P + T], mask


class CachedStack:
    """Blocks (`harness.model.trunk.Block`) run chunk by chunk over successive positions.

    `stack(x)` runs x (B, T, d) at positions length..length+T-1 through every block and
    returns (B, T, d); `truncate(n)` forgets every position from n on. An empty stack
    (Meta with as many heads as layers keeps no shared layer) is the identity.
    """

    def __init__(self, blocks: list[nn.Module], rope: tuple[torch.Tensor, torch.Tensor], batch: int = 1):
        cos, _ = rope  # (max_len, hd): the tables of every position this stack may see
        self.blocks, self.rope = list(blocks), rope
        self.caches = []
        for block in self.blocks:
            attn, dtype = block.self_attn, block.self_attn.k_proj.weight.dtype
            self.caches.append(KVCache(batch, attn.n_kv_heads, attn.head_dim, cos.shape[0], dtype, cos.device))
        self.length = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        start, T = self.length, x.shape[1]
        rope = (self.rope[0][start : start + T], self.rope[1][start : start + T])
        for block, cache in zip(self.blocks, self.caches):
            x = block(x, rope, cache)
        self.length = start + T
        return x

    def truncate(self, length: int) -> None:
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a stack of {self.length} positions to {length}")
        self.length = length
        for cache in self.caches:
            cache.length = length
