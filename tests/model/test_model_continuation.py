"""Batched greedy continuation (`model/continuation.py`) is plain greedy decoding: the same
tokens as an independent loop that reruns the whole sequence without caches each step."""

from __future__ import annotations

import pytest
import torch

from harness.model.continuation import greedy_continuation
from tests.model.conftest import VOCAB, make, objective, tiny_trunk


def uncached_greedy(model, prompts: torch.Tensor, length: int) -> torch.Tensor:
    """The reference: a full forward of everything so far, argmax of the last position."""
    seq = prompts
    with torch.no_grad():
        while seq.shape[1] < length:
            seq = torch.cat([seq, model.next_token_logits(seq)[:, -1:].argmax(-1)], dim=1)
    return seq


@pytest.mark.parametrize("kind, fields", [("stp", {}), ("meta", {"n": 2}), ("deepseek", {"depth": 1})])
def test_batched_cached_continuation_is_plain_greedy_decoding(kind, fields):
    model = make(tiny_trunk(), objective(kind, **fields), seed=3).eval()
    with torch.no_grad():  # larger weights than the init: sharper logits, continuations that differ by row
        for p in model.parameters():
            p.mul_(3.0)
    prompts = torch.randint(0, VOCAB, (5, 4), generator=torch.Generator().manual_seed(2))
    out = greedy_continuation(model, prompts, 16)
    assert out.shape == (5, 16) and torch.equal(out[:, :4], prompts)
    assert torch.equal(out, uncached_greedy(model, prompts, 16))
    assert len({tuple(r) for r in out[:, 4:].tolist()}) > 1  # not one degenerate row repeated


def test_a_prompt_as_long_as_the_row_is_refused():
    model = make(tiny_trunk(), objective("stp"))
    with pytest.raises(ValueError, match="cannot be continued"):
        greedy_continuation(model, torch.zeros(1, 8, dtype=torch.long), 8)
