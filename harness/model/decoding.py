"""Incremental decoding paths: the next-token path, and the same path with drafters.

A path decodes one sequence (batch 1) with KV caches (`harness.model.kv_cache`):
  `verify(ids)` runs the next-token path on ids at the positions after the committed ones
      and returns its greedy choice after each of them (the argmax of the next-token logits);
  `commit(kept)` keeps the first `kept` positions of that block and forgets the rest;
  `draft(token, count)` proposes `count` tokens to follow `token`, the greedy token after the
      committed positions (plain greedy decoding never drafts).
`harness.eval.speculative` runs the loop; the same loop with `NextTokenPath` and no drafts is
plain greedy decoding, so both use the same machinery.

Drafters:
- Meta (Gloeckle et al. 2024 Sec. 3.2, after Stern et al. 2018's blockwise parallel
  decoding): heads 2..n read the trunk state at the last committed position and propose
  t+2..t+n in parallel. Each head is a transformer layer, so it keeps its own KV cache and
  runs on every position `verify` feeds; the heads' states at the last accepted position
  are the next drafts, so a step is one forward.
- DeepSeek (V3 Sec. 2.2, chained): module k at position i reads h^{k-1}_i and the embedding
  of token i+k, the token drafted just before (module 1: the greedy token itself), and
  proposes token i+k+1. Module k's cache keeps only positions whose token i+k is
  committed; the positions that read a draft are recomputed at the next `draft`.
"""

from __future__ import annotations

import torch

from harness.model.kv_cache import CachedStack, KVCache
from harness.model.model import MTPModel


def _greedy(logits: torch.Tensor) -> list[int]:
    return logits.argmax(dim=-1).flatten().tolist()  # first index on ties, like torch everywhere


def _ids(tokens: list[int], device) -> torch.Tensor:
    return torch.tensor([tokens], dtype=torch.long, device=device)  # (1, T)


class NextTokenPath:
    """Embedding, the next-token layers (trunk, plus Meta's head 1), final norm, unembedding."""

    n_draft = 0

    def __init__(self, model: MTPModel, max_len: int):
        self.model, self.trunk = model, model.trunk
        self.rope = self.trunk.rope(max_len)
        self.device = self.rope[0].device
        self.stack = CachedStack(model.next_token_layers(), self.rope)
        self.start = 0  # first position of the block last verified

    def verify(self, ids: list[int], last_only: bool = False) -> list[int]:
        self.start = self.stack.length
        h = self.stack(self.trunk.embed(_ids(ids, self.device)))  # (1, T, d)
        return _greedy(self.trunk.logits(h[:, -1:] if last_only else h))

    def commit(self, kept: int) -> None:
        self.stack.truncate(self.start + kept)

    def draft(self, token: int, count: int) -> list[int]:
        return []


class MetaPath(NextTokenPath):
    """Trunk, then head 1 (the next-token path) and heads 2..n (the drafters) on its output."""

    def __init__(self, model: MTPModel, max_len: int):
        super().__init__(model, max_len)
        heads = model.objective.heads
        self.n_draft = len(heads) - 1
        self.stack = CachedStack(self.trunk.layers, self.rope)
        self.heads = [CachedStack([head], self.rope) for head in heads]
        self.states: list[torch.Tensor] = []

    def verify(self, ids: list[int], last_only: bool = False) -> list[int]:
        self.start = self.stack.length
        z = self.stack(self.trunk.embed(_ids(ids, self.device)))  # (1, T, d) trunk output
        self.states = [head(z) for head in self.heads]  # every head fills its cache
        h1 = self.states[0]
        return _greedy(self.trunk.logits(h1[:, -1:] if last_only else h1))

    def commit(self, kept: int) -> None:
        for stack in (self.stack, *self.heads):
            stack.truncate(self.start + kept)
        self.drafter_states = torch.cat([h[:, kept - 1] for h in self.states[1:]])  # (n-1, d)

    def draft(self, token: int, count: int) -> list[int]:
        # one unembedding for all drafts: at small d it costs several blocks (V x d)
        return _greedy(self.trunk.logits(self.drafter_states[:count])) if count else []


class DeepSeekPath(NextTokenPath):
    """The main model verifies; modules 1..D draft in a chain after each commit."""

    def __init__(self, model: MTPModel, max_len: int):
        super().__init__(model, max_len)
        self.modules = list(model.objective.layers)
        self.n_draft = len(self.modules)
        self.stack = CachedStack(self.trunk.layers, self.rope)
        d = model.model_cfg.d_model
        dtype = self.trunk.embed_tokens.weight.dtype
        # h^k of every position computed so far, k = 0 (main) .. D; (1, max_len, d) each
        self.levels = [torch.zeros(1, max_len, d, dtype=dtype, device=self.device) for _ in range(self.n_draft + 1)]
        self.caches = [
            KVCache(1, m.block.self_attn.n_kv_heads, m.block.self_attn.head_dim, max_len, dtype, self.device)
            for m in self.modules
        ]
        self.tokens: list[int] = []  # the committed tokens, one per committed position
        self.block: list[int] = []

    def verify(self, ids: list[int], last_only: bool = False) -> list[int]:
        self.start, self.block = self.stack.length, list(ids)
        h = self.stack(self.trunk.embed(_ids(ids, self.device)))  # (1, T, d) = h^0
        self.levels[0][:, self.start : self.start + h.shape[1]] = h
        return _greedy(self.trunk.logits(h[:, -1:] if last_only else h))

    def commit(self, kept: int) -> None:
        self.stack.truncate(self.start + kept)
        self.tokens.extend(self.block[:kept])

    def draft(self, token: int, count: int) -> list[int]:
        """Module k runs on the positions it has not committed, lo..m-1, reading h^{k-1}
        there and tokens lo+k..m-1+k (committed, then `token`, then earlier drafts)."""
        m, seq, drafts = len(self.tokens), [*self.tokens, token], []
        for k, (module, cache) in enumerate(zip(self.modules[:count], self.caches), start=1):
            lo = cache.length
            rope = (self.rope[0][lo:m], self.rope[1][lo:m])
            emb = self.trunk.embed(_ids(seq[lo + k : m + k], self.device))  # (1, m-lo, d)
            h = module(self.levels[k - 1][:, lo:m], emb, rope, cache)  # (1, m-lo, d) = h^k
            self.levels[k][:, lo:m] = h
            drafts.append(_greedy(self.trunk.lm_head(module.shared_head.norm(h[:, -1])))[0])
            seq.append(drafts[-1])
            cache.length = max(lo, m - k + 1)  # keep the positions whose token i+k is committed
        return drafts


def decoding_path(model: MTPModel, max_len: int, speculative: bool) -> NextTokenPath:
    """The path for plain greedy decoding, or with the objective's drafters."""
    if not speculative:
        return NextTokenPath(model, max_len)
    kind = model.objective_cfg.kind
    if model.objective_cfg.n_predict < 2:
        raise NotImplementedError(f"objective {kind!r} has no extra depths to draft with")
    if kind == "meta":
        return MetaPath(model, max_len)
    if kind == "deepseek":
        return DeepSeekPath(model, max_len)
    raise NotImplementedError(f"objective {kind!r} has no drafter")
