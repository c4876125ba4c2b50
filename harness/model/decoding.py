"""Incremental decoding paths: the next-token path, which objectives extend with drafters.

A path decodes one sequence (batch 1) with KV caches (`harness.model.kv_cache`):
  `verify(ids)` runs the next-token path on ids at the positions after the committed ones
      and returns its greedy choice after each of them (the argmax of the next-token logits);
  `commit(kept)` keeps the first `kept` positions of that block and forgets the rest;
  `draft(token, count)` proposes `count` tokens to follow `token`, the greedy token after the
      committed positions (plain greedy decoding never drafts).
`harness.eval.analyses.speculative` runs the loop; the same loop with `NextTokenPath` and no drafts is
plain greedy decoding, so both use the same machinery. An objective that can draft returns
its own path, a subclass of `NextTokenPath`, from `drafter()` (Meta's `MetaPath`, DeepSeek's
`DeepSeekPath`, each in the objective's file).

This module imports torch only inside its functions, so that objective files can subclass
`NextTokenPath` without importing torch (see harness/model/objectives/__init__.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from harness.model.mtp_model import MTPModel


def greedy(logits: torch.Tensor) -> list[int]:
    return logits.argmax(dim=-1).flatten().tolist()  # first index on ties, like torch everywhere


def as_ids(tokens: list[int], device) -> torch.Tensor:
    import torch

    return torch.tensor([tokens], dtype=torch.long, device=device)  # (1, T)


class NextTokenPath:
    """Embedding, the next-token layers (trunk, plus Meta's head 1), final norm, unembedding."""

    n_draft = 0

    def __init__(self, model: MTPModel, max_len: int):
        from harness.model.kv_cache import CachedStack

        self.model, self.trunk = model, model.trunk
        self.rope = self.trunk.rope(max_len)
        self.device = self.rope[0].device
        self.stack = CachedStack(model.next_token_layers(), self.rope)
        self.start = 0  # first position of the block last verified

    def verify(self, ids: list[int], last_only: bool = False) -> list[int]:
        self.start = self.stack.length
        h = self.stack(self.trunk.embed(as_ids(ids, self.device)))  # (1, T, d)
        return greedy(self.trunk.logits(h[:, -1:] if last_only else h))

    def commit(self, kept: int) -> None:
        self.stack.truncate(self.start + kept)

    def draft(self, token: int, count: int) -> list[int]:
        return []


def decoding_path(model: MTPModel, max_len: int, speculative: bool) -> NextTokenPath:
    """The path for plain greedy decoding, or with the objective's drafters."""
    if not speculative:
        return NextTokenPath(model, max_len)
    cfg = model.objective_cfg
    if cfg.n_predict < 2:
        raise NotImplementedError(f"objective {cfg.kind!r} has no extra depths to draft with")
    path = cfg.drafter(model, max_len)
    if path is None:
        raise NotImplementedError(f"objective {cfg.kind!r} has no drafter")
    return path
