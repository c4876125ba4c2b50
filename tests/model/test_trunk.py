"""The trunk: causality, grouped-query attention against a reference, init, tying, style."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from harness.model.trunk import Attention, RotaryEmbedding, apply_rope
from tests.model.conftest import make, objective, tiny_trunk


def test_next_token_logits_are_causal():
    model = make(tiny_trunk(), objective("stp"))
    x = torch.randint(0, 300, (2, 10), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 6] = (y[:, 6] + 1) % 300
    with torch.no_grad():
        a, b = model.next_token_logits(x), model.next_token_logits(y)
    assert torch.equal(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_grouped_query_attention_matches_a_hand_written_reference():
    torch.manual_seed(0)
    attn = Attention(d_model=32, n_heads=4, n_kv_heads=2)
    x = torch.randn(2, 7, 32)
    cos, sin = RotaryEmbedding(8, 10000.0)(7)
    B, T, h, hd = 2, 7, 4, 8
    q = apply_rope(attn.q_proj(x).view(B, T, h, hd).transpose(1, 2), cos, sin)
    k = apply_rope(attn.k_proj(x).view(B, T, 2, hd).transpose(1, 2), cos, sin)
    v = attn.v_proj(x).view(B, T, 2, hd).transpose(1, 2)
    k, v = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)  # kv head j serves q heads 2j, 2j+1
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    want = attn.o_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, h * hd))
    assert torch.allclose(attn(x, (cos, sin)), want, atol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    cos, sin = RotaryEmbedding(8, 10000.0)(12)
    q, k = torch.randn(8), torch.randn(8)

    def score(i, j):
        qi = apply_rope(q.view(1, 1, 1, 8).expand(1, 1, 12, 8), cos, sin)[0, 0, i]
        kj = apply_rope(k.view(1, 1, 1, 8).expand(1, 1, 12, 8), cos, sin)[0, 0, j]
        return (qi @ kj).item()

    assert score(5, 2) == pytest.approx(score(10, 7), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_init_is_deterministic_and_scales_residual_projections():
    cfg = tiny_trunk(stp_layers=8, d_model=64, ffn_hidden=256)
    a, b, c = make(cfg, objective("stp"), 3), make(cfg, objective("stp"), 3), make(cfg, objective("stp"), 4)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q), name
        if p.dim() == 2:
            assert not torch.equal(p, r), name
    layer = a.trunk.layers[0]
    assert layer.self_attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert layer.mlp.down_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.1)
    assert torch.equal(layer.input_layernorm.weight, torch.ones(64))


def test_tied_embeddings_share_one_parameter():
    model = make(tiny_trunk(tie_embeddings=True), objective("stp"))
    assert model.trunk.lm_head.weight is model.trunk.embed_tokens.weight
    untied = make(tiny_trunk(), objective("stp"))
    n = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in untied.parameters()) - n == 300 * 32


def test_trunk_module_follows_the_house_rules():
    """STYLE rule 2: at most 350 lines, and nothing from harness but its own config."""
    path = Path(__file__).resolve().parents[2] / "harness" / "model" / "trunk.py"
    source = path.read_text()
    assert len(source.splitlines()) <= 350
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = [n.module for n in imports if isinstance(n, ast.ImportFrom)] + [
        a.name for n in imports if isinstance(n, ast.Import) for a in n.names
    ]
    assert [m for m in modules if m and m.startswith("harness")] == ["harness.model.config"]


def _step(model, x):
    """Loss parts and every parameter's gradient of one forward + backward; bytes saved for it."""
    saved = []

    def pack(t):
        saved.append(t.untyped_storage().nbytes())
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return {k: v.clone() for k, v in out.losses.items()}, grads, sum(saved)


def test_activation_checkpointing_gives_the_plain_paths_losses_and_gradients():
    """`train.activation_checkpointing` recomputes each trunk block in the backward: the same
    losses and gradients bit for bit (no dropout, same ops in the same order), for every
    objective, with less saved for the backward."""
    from harness.model.mtp_model import build_model
    from harness.model.objectives.registry import registered

    cfg = tiny_trunk(stp_layers=4)
    for kind, cls in registered().items():
        obj = cls(**cls.example)
        x = torch.randint(0, cfg.vocab_size, (2, obj.row_length(12)), generator=torch.Generator().manual_seed(2))
        torch.manual_seed(0)
        plain = build_model(cfg, obj)
        torch.manual_seed(0)
        ckpt = build_model(cfg, obj, checkpointing=True)
        (losses_a, grads_a, saved_a), (losses_b, grads_b, saved_b) = _step(plain, x), _step(ckpt, x)
        assert losses_a.keys() == losses_b.keys() and grads_a.keys() == grads_b.keys(), kind
        assert all(torch.equal(losses_a[k], losses_b[k]) for k in losses_a), kind
        assert all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a), kind
        assert saved_b < saved_a, kind
        with torch.no_grad():  # inference never checkpoints (nothing to save)
            assert torch.equal(ckpt.next_token_logits(x), plain.next_token_logits(x))
