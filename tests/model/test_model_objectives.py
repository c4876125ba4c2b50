"""The objectives against hand computations: shifts, windows, weights, equivalences."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.errors import HarnessError
from harness.model import objectives
from harness.model.export import export_names
from harness.model.objectives.registry import objective_class, registered
from tests.model.conftest import make, objective, rows, tiny_trunk

S = 12
ALL = [
    ("stp", {}),
    ("meta", {"n": 3, "memory_efficient": False}),
    ("meta", {"n": 3, "memory_efficient": True, "loss_weights": [1.0, 0.5, 0.25]}),
    ("deepseek", {"depth": 2, "mtp_lambda": 0.3}),
    ("top", {"window": 4}),
]


def named_grads(model) -> dict[str, torch.Tensor]:
    """Gradients keyed by exported name, so STP and Meta n=1 line up layer for layer."""
    grads = {key: p.grad for key, p in model.named_parameters()}
    return {name: grads[key] for key, (_, name) in export_names(model).items() if name and key in grads}


def test_registry_finds_every_objective_file_and_suggests_names():
    files = {p.stem for p in Path(objectives.__file__).parent.glob("*.py")} - {"__init__", "base", "registry"}
    assert set(registered()) == files and next(iter(registered())) == "stp"  # every file; the default first
    assert all(cls.model_fields["kind"].default == kind for kind, cls in registered().items())
    with pytest.raises(HarnessError, match="unknown objective 'mta'; did you mean 'meta'"):
        objective_class("mta")


@pytest.mark.parametrize("window", ["full", "truncate"])
@pytest.mark.parametrize("efficient", [False, True])
def test_meta_with_one_head_is_stp_exactly(window, efficient):
    stp = make(tiny_trunk(), objective("stp", target_window=window))
    meta = make(tiny_trunk(), objective("meta", n=1, memory_efficient=efficient, target_window=window))
    x = rows(stp.objective_cfg)
    a, b = stp(x), meta(x)
    a.loss.backward()
    b.loss.backward()
    assert torch.equal(a.loss, b.loss) and a.n_targets == b.n_targets
    ga, gb = named_grads(stp), named_grads(meta)
    assert ga.keys() == gb.keys() and len(ga) == 4 * 9 + 3
    assert all(torch.equal(ga[k], gb[k]) for k in ga)


def test_deepseek_with_lambda_zero_is_stp_and_leaves_modules_untouched():
    ds_cfg = objective("deepseek", depth=2, mtp_lambda=0.0)
    stp, ds = make(tiny_trunk(), objective("stp")), make(tiny_trunk(), ds_cfg)
    x = rows(ds_cfg)
    a, b = stp(x[:, : S + 1]), ds(x)
    a.loss.backward()
    b.loss.backward()
    assert torch.equal(a.loss, b.loss)
    ga, gb = named_grads(stp), named_grads(ds)
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    module_grads = [p.grad for p in ds.objective.parameters()]
    assert module_grads and all(g is not None and not g.any() for g in module_grads)


def hand_cross_entropy(logits: torch.Tensor, row: torch.Tensor, k: int) -> tuple[float, int]:
    """Mean over positions i that have token i+k in the row of -log softmax(logits_i)[row_{i+k}]."""
    total, count = 0.0, 0
    for b in range(row.shape[0]):
        for i in range(logits.shape[1]):
            if i + k < row.shape[1]:
                logp = torch.log_softmax(logits[b, i].double(), dim=-1)
                total -= logp[row[b, i + k]].item()
                count += 1
    return total / count, count


@pytest.mark.parametrize("window", ["full", "truncate"])
@pytest.mark.parametrize("kind, fields", ALL)
def test_each_depth_loss_is_cross_entropy_against_the_shifted_targets(kind, fields, window):
    cfg = objective(kind, target_window=window, **fields)
    model = make(tiny_trunk(), cfg)
    x = rows(cfg)
    with torch.no_grad():
        out, logits = model(x), model.depth_logits(x)
    n = cfg.n_predict
    assert list(out.losses) == cfg.loss_parts and len(logits) == n
    assert [k for k in out.losses if k.startswith("depth_")] == [f"depth_{k}" for k in range(1, n + 1)]
    for k in range(1, n + 1):
        want, count = hand_cross_entropy(logits[k - 1], x, k)
        assert out.losses[f"depth_{k}"].item() == pytest.approx(want, abs=1e-5)
        assert out.n_targets[f"depth_{k}"] == count == 3 * (S if window == "full" else S - k + 1)


@pytest.mark.parametrize("kind, fields", ALL)
def test_no_depth_sees_its_own_target(kind, fields):
    """Changing token i+k must leave depth k's prediction at positions <= i unchanged."""
    cfg = objective(kind, **fields)
    model = make(tiny_trunk(), cfg)
    x = rows(cfg, B=1)
    i = 5
    with torch.no_grad():
        base = model.depth_logits(x)
        for k in range(1, cfg.n_predict + 1):
            y = x.clone()
            y[0, i + k] = (y[0, i + k] + 1) % 300
            changed = model.depth_logits(y)[k - 1]
            assert torch.equal(changed[:, : i + 1], base[k - 1][:, : i + 1]), f"depth {k}"
            if kind == "deepseek" and k >= 2:  # module k-1 reads t_{i+k-1}, the token before its target
                z = x.clone()
                z[0, i + k - 1] = (z[0, i + k - 1] + 1) % 300
                assert not torch.equal(model.depth_logits(z)[k - 1][:, i], base[k - 1][:, i])


def test_meta_weights_and_deepseek_lambda_schedule_combine_depth_losses():
    meta = make(tiny_trunk(), objective("meta", n=3, loss_weights=[1.0, 0.5, 0.25], memory_efficient=False))
    out = meta(rows(meta.objective_cfg))
    d = [out.losses[f"depth_{k}"] for k in (1, 2, 3)]
    assert out.loss.item() == pytest.approx((d[0] + 0.5 * d[1] + 0.25 * d[2]).item(), abs=1e-6)
    cfg = objective("deepseek", depth=2, mtp_lambda=[{"from_tokens": 0, "value": 0.3}, {"from_tokens": 100, "value": 0.1}])
    ds = make(tiny_trunk(), cfg)
    x = rows(cfg)
    for seen, lam in ((0, 0.3), (99, 0.3), (100, 0.1), (10**12, 0.1)):
        out = ds(x, tokens_seen=seen)
        d = [out.losses[f"depth_{k}"] for k in (1, 2, 3)]
        assert out.loss.item() == pytest.approx((d[0] + lam / 2 * (d[1] + d[2])).item(), abs=1e-6)


@pytest.mark.parametrize("n, tie, weights", [(2, False, None), (4, False, [1.0, 0.5, 0.5, 0.25]), (3, True, None)])
def test_memory_efficient_meta_gradients_equal_naive(n, tie, weights):
    cfgs = [objective("meta", n=n, memory_efficient=e, loss_weights=weights) for e in (False, True)]
    naive, efficient = (make(tiny_trunk(tie_embeddings=tie), c) for c in cfgs)
    x = rows(cfgs[0])
    a, b = naive(x), efficient(x)
    (2.0 * a.loss).backward()  # a scaled loss, as a loss scaler or gradient accumulation gives
    (2.0 * b.loss).backward()
    assert b.loss.item() == pytest.approx(a.loss.item(), abs=1e-6)
    assert all(torch.allclose(a.losses[k], b.losses[k], atol=1e-6) for k in a.losses)
    for (name, p), q in zip(naive.named_parameters(), efficient.parameters()):
        assert p.grad is not None and q.grad is not None, name
        assert (p.grad - q.grad).abs().max().item() < 1e-6, name
    with torch.no_grad():
        assert efficient(x).loss.item() == pytest.approx(a.loss.item(), abs=1e-6)


@pytest.mark.parametrize("freeze", ["trunk", "trunk_and_unembedding"])
def test_memory_efficient_meta_gradients_equal_naive_with_a_frozen_trunk(freeze):
    """Under `train.freeze` no gradient reaches the trunk, and the heads' equal the naive path's."""
    cfgs = [objective("meta", n=3, memory_efficient=e) for e in (False, True)]
    naive, efficient = (make(tiny_trunk(), c) for c in cfgs)
    for model in (naive, efficient):
        model.freeze(freeze)
    x = rows(cfgs[0])
    naive(x).loss.backward()
    efficient(x).loss.backward()
    for (name, p), q in zip(naive.named_parameters(), efficient.parameters()):
        assert (p.grad is None) == (q.grad is None) == (not p.requires_grad), name
        if p.grad is not None:
            assert (p.grad - q.grad).abs().max().item() < 1e-6, name


@pytest.mark.parametrize("kind, fields", ALL)
def test_inference_hooks_agree_with_the_training_path(kind, fields):
    cfg = objective(kind, **fields)
    model = make(tiny_trunk(), cfg)
    x = rows(cfg)
    with torch.no_grad():
        out = model(x)
        next_logits = model.next_token_logits(x[:, :S])
        assert torch.allclose(next_logits, model.depth_logits(x)[0], atol=1e-6)
    assert out.losses["depth_1"].item() == pytest.approx(hand_cross_entropy(next_logits, x, 1)[0], abs=1e-5)


def test_bad_shapes_are_refused():
    with pytest.raises(HarnessError, match="objective.n 3 heads need at least as many layers"):
        make(tiny_trunk(stp_layers=2), objective("meta", n=3))
    model = make(tiny_trunk(), objective("meta", n=3))
    with pytest.raises(ValueError, match="too short"):
        model(torch.zeros(2, 3, dtype=torch.long))


def test_every_objective_has_a_design_note_with_a_depth_table():
    """STYLE rule 7: a note beside each objective's file, with its per-depth input/label table."""
    import inspect
    from pathlib import Path

    for cls in registered().values():
        note = Path(inspect.getfile(cls)).with_suffix(".md")
        text = note.read_text()
        assert "| depth" in text and "label" in text, note


def brute_force_top_target(row: list[int], i: int, window: int, vocab: int) -> list[float]:
    """The paper's target for position i, by a loop: W - d for the nearest d in 0..W-1 with
    row[i+1+d] == v (the next token scores W), -inf for tokens not in the window."""
    target = [float("-inf")] * vocab
    for d in range(window):
        if i + 1 + d < len(row) and target[row[i + 1 + d]] == float("-inf"):
            target[row[i + 1 + d]] = float(window - d)
    return target


@pytest.mark.parametrize("window, row_extra", [(1, 1), (3, 3), (5, 1), (6, 6)])
def test_top_targets_rank_upcoming_tokens_by_first_appearance(window, row_extra):
    from harness.model.objectives.top import proximity_scores

    vocab, S = 7, 9
    tokens = torch.randint(0, vocab, (3, S + row_extra), generator=torch.Generator().manual_seed(window))
    tokens[0, 1:6] = torch.tensor([4, 2, 4, 4, 2])  # repeats: the nearest occurrence counts
    scores = proximity_scores(tokens, S, window, vocab)
    for b in range(3):
        for i in range(S):
            want = brute_force_top_target(tokens[b].tolist(), i, window, vocab)
            assert scores[b, i].tolist() == want, (b, i)


def test_top_loss_is_next_token_plus_listnet_by_hand():
    cfg = objective("top", window=3)
    model, stp = make(tiny_trunk(), cfg), make(tiny_trunk(), objective("stp"))
    x = rows(cfg, B=2)
    with torch.no_grad():
        out = model(x)
        normed = model.trunk.norm(model.trunk(x[:, :S], model.trunk.rope(S)))
        top_logits = model.objective.top_head(normed).double()
    total = 0.0
    for b in range(2):
        for i in range(S):
            target = torch.tensor(brute_force_top_target(x[b].tolist(), i, 3, 300), dtype=torch.double)
            p = torch.softmax(target, dim=-1)  # ListNet's top-one probabilities of the target
            total -= float((p * torch.log_softmax(top_logits[b, i], dim=-1)).sum())
    assert out.losses["top"].item() == pytest.approx(total / (2 * S), abs=1e-5)
    assert out.loss.item() == pytest.approx(out.losses["depth_1"].item() + out.losses["top"].item(), abs=1e-6)
    # The trunk draws what STP's does for the same seed, so the next-token loss is STP's.
    assert torch.equal(out.losses["depth_1"], stp(x[:, : S + 1]).losses["depth_1"])
    assert out.n_targets == {"depth_1": 2 * S, "top": 2 * S}
