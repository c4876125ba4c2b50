"""Each objective's `params` and `flops` (built from `harness.model.counting`'s pieces) against the
real modules: parameter counts exactly, and training FLOPs per token exactly equal to
torch's FlopCounterMode over a real forward + backward.

FlopCounterMode counts nothing for CPU `scaled_dot_product_attention` (the fused CPU op has
no formula registered), so the count runs under the MATH backend, where attention is the
bmm's the formula assumes (QK^T and AV over the full S x S square).
"""

from __future__ import annotations

import pytest
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from harness.model.counting import embedding_params
from harness.model.objectives.registry import objective_class, registered
from tests.model.conftest import make, objective, rows, tiny_trunk

SHAPES = {
    "gqa": dict(),
    "mha-tied": dict(stp_layers=5, d_model=48, n_heads=6, n_kv_heads=6, ffn_hidden=96, vocab_size=256, tie_embeddings=True),
    "mqa-wide-vocab": dict(stp_layers=6, d_model=64, n_heads=4, n_kv_heads=1, ffn_hidden=176, vocab_size=1024),
}
# Every registered objective at its example config (a new objective file is checked without
# being named here), then settings of the shipped ones that change their counts.
OBJECTIVES = [(kind, dict(objective_class(kind).example)) for kind in registered()] + [
    ("meta", {"n": 2}),
    ("meta", {"n": 4, "memory_efficient": True}),
    ("meta", {"n": 4, "memory_efficient": False, "target_window": "truncate"}),
    ("deepseek", {"depth": 1}),
    ("deepseek", {"depth": 2, "target_window": "truncate"}),
    ("top", {"window": 3}),
    ("top", {"window": 5, "target_window": "truncate"}),
]


@pytest.mark.parametrize("kind, fields", OBJECTIVES)
@pytest.mark.parametrize("shape", SHAPES)
def test_param_counts_are_exact(shape, kind, fields):
    cfg, obj = tiny_trunk(**SHAPES[shape]), objective(kind, **fields)
    model = make(cfg, obj)
    counted = obj.params(cfg)
    assert sum(p.numel() for p in model.parameters()) == counted.total
    embedding = {id(model.trunk.embed_tokens.weight), id(model.trunk.lm_head.weight)}
    assert sum(p.numel() for p in model.parameters() if id(p) in embedding) == embedding_params(cfg)


@pytest.mark.parametrize("S", [8, 24])
@pytest.mark.parametrize("kind, fields", OBJECTIVES)
@pytest.mark.parametrize("shape", SHAPES)
def test_training_flops_match_the_flop_counter(shape, kind, fields, S):
    cfg, obj = tiny_trunk(**SHAPES[shape], seq_len=max(S, 16)), objective(kind, **fields)
    model = make(cfg, obj)
    x = rows(obj, S=S, B=2, vocab=cfg.vocab_size)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x).loss.backward()
    want = obj.flops(cfg, S).total * x.shape[0] * S
    assert counter.get_total_flops() == want


FREEZE = ["trunk", "trunk_and_unembedding"]


@pytest.mark.parametrize("freeze", FREEZE)
@pytest.mark.parametrize("kind, fields", OBJECTIVES)
@pytest.mark.parametrize("shape", ["gqa", "mqa-wide-vocab"])
def test_frozen_training_flops_and_trainable_params_match_the_flop_counter(shape, kind, fields, freeze):
    """`train.freeze`: a frozen part costs what autograd still runs for it (forward, plus the
    gradient of its input where something before it learns), counted exactly."""
    cfg, obj = tiny_trunk(**SHAPES[shape], seq_len=16), objective(kind, **fields)
    model = make(cfg, obj)
    model.freeze(freeze)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == obj.trainable_params(cfg, freeze)
    x = rows(obj, S=8, B=2, vocab=cfg.vocab_size)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss = model(x).loss
        if loss.requires_grad:  # STP with everything frozen has nothing to learn
            loss.backward()
    assert counter.get_total_flops() == obj.flops(cfg, 8, freeze=freeze).total * x.shape[0] * 8
    assert obj.flops(cfg, 8, freeze=freeze).total < obj.flops(cfg, 8).total
