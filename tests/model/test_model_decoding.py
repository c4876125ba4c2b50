"""KV-cached incremental forwards and the drafting paths agree with whole-sequence forwards."""

from __future__ import annotations

import random

import pytest
import torch

from harness.model.decoding import decoding_path
from harness.model.kv_cache import CachedStack, KVCache
from tests.model.conftest import VOCAB, make, objective, tiny_trunk


def test_chunked_cached_forward_equals_the_whole_forward():
    model = make(tiny_trunk(), objective("stp"))
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(0))
    rope = model.trunk.rope(11)
    whole = model.trunk(ids, rope)
    stack, parts = CachedStack(model.trunk.layers, model.trunk.rope(16), batch=2), []
    for a, b in ((0, 3), (3, 4), (4, 8), (8, 11)):
        parts.append(stack(model.trunk.embed(ids[:, a:b])))
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=1e-5, atol=1e-5)
    assert stack.length == 11

    stack.truncate(5)  # roll back six positions, then feed other tokens
    other = torch.randint(0, VOCAB, (2, 4), generator=torch.Generator().manual_seed(1))
    tail = stack(model.trunk.embed(other))
    expected = model.trunk(torch.cat([ids[:, :5], other], dim=1), model.trunk.rope(9))[:, 5:]
    torch.testing.assert_close(tail, expected, rtol=1e-5, atol=1e-5)


def test_cache_refuses_to_overflow_or_grow_by_truncation():
    cache = KVCache(1, 1, 4, max_len=3, dtype=torch.float32)
    k = torch.zeros(1, 1, 2, 4)
    _, _, mask = cache.append(k, k)
    assert mask.tolist() == [[True, False], [True, True]]
    with pytest.raises(ValueError, match="do not fit"):
        cache.append(k, k)
    model = make(tiny_trunk(), objective("stp"))
    stack = CachedStack(model.trunk.layers, model.trunk.rope(8))
    with pytest.raises(ValueError, match="cannot truncate"):
        stack.truncate(1)


@torch.no_grad()
def reference_drafts(model, seq: list[int], nxt: int, count: int) -> list[int]:
    """Depth k+1's argmax at the last committed position from whole-sequence forwards; the
    DeepSeek chain reads nxt, then each earlier draft, as the token k ahead."""
    m, tokens, drafts = len(seq), [*seq, nxt], []
    for k in range(1, count + 1):
        full = torch.tensor([tokens])
        rope = model.trunk.rope(m)
        logits = model.depth_logits_at(model.trunk(full[:, :m], rope), full, rope)
        drafts.append(int(logits[k][0, m - 1].argmax()))
        tokens.append(drafts[-1])
    return drafts


@pytest.mark.parametrize("kind,fields", [("meta", {"n": 2}), ("meta", {"n": 4}), ("deepseek", {"depth": 1}),
                                         ("deepseek", {"depth": 3})])  # fmt: skip
def test_drafts_and_verification_equal_whole_sequence_forwards(kind, fields):
    """Through blocks of arbitrary tokens and arbitrary rollbacks, every draft is what the
    uncached model computes, and verification is the next-token path's argmax."""
    model = make(tiny_trunk(init_std=0.5), objective(kind, **fields)).eval()
    # large weights (init_std 0.5): an argmax flips when any input, cached or not, is wrong
    rng = random.Random(0)
    seq = [rng.randrange(VOCAB) for _ in range(5)]
    path = decoding_path(model, 64, speculative=True)
    with torch.no_grad():
        nxt = path.verify(seq, last_only=True)[-1]
        path.commit(len(seq))
        for _ in range(8):
            count = rng.randint(1, path.n_draft)
            assert path.draft(nxt, count) == reference_drafts(model, seq, nxt, count)
            block = [nxt, *(rng.randrange(VOCAB) for _ in range(path.n_draft))]
            greedy = path.verify(block)
            expected = model.next_token_logits(torch.tensor([seq + block]))[0, len(seq) :].argmax(-1).tolist()
            assert greedy == expected
            kept = rng.randint(1, len(block))
            path.commit(kept)
            seq, nxt = seq + block[:kept], greedy[kept - 1]
