"""Memory-efficient Meta heads under a real DeepSpeed engine (one CPU process, gloo).

The efficient mode does its head backward inside `forward`; these tests show the engine
still sees every gradient (ZeRO 0 and 2), and that ZeRO-3 is refused with a clear error.
"""

from __future__ import annotations

import os

import pytest
import torch

from harness.ranks import free_port
from tests.model.conftest import make, objective, rows, tiny_trunk


@pytest.fixture(scope="module")
def deepspeed():
    """One-process DeepSpeed as docs/MEASURED.md describes: env for a single rank, no shm op build."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in dict(
            RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(free_port()), DS_ACCELERATOR="cpu",
        ).items():
            mp.setenv(key, os.environ.get(key, value))
        import deepspeed as ds

        ds.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        ds.init_distributed(dist_backend="gloo")
        yield ds


def _engine(ds, model, stage: int, batch: int):
    config = {
        "train_micro_batch_size_per_gpu": batch,
        "gradient_accumulation_steps": 1,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "torch_adam": True}},
        "zero_optimization": {"stage": stage},
        "steps_per_print": 10**9,
    }
    engine, *_ = ds.initialize(model=model, model_parameters=model.parameters(), config=config)
    return engine


def _grads(ds, engine) -> list[torch.Tensor]:
    from deepspeed.utils import safe_get_full_grad

    return [safe_get_full_grad(p).clone() for p in engine.module.parameters()]


@pytest.mark.parametrize("stage", [0, 2])
def test_memory_efficient_heads_match_naive_under_deepspeed(deepspeed, stage):
    cfgs = [objective("meta", n=3, memory_efficient=e, loss_weights=[1.0, 0.5, 0.25]) for e in (False, True)]
    x = rows(cfgs[0], B=2)
    reference = make(tiny_trunk(), cfgs[0])
    reference(x).loss.backward()
    want = [p.grad for p in reference.parameters()]
    engines, grads, losses = [], [], []
    for cfg in cfgs:
        engine = _engine(deepspeed, make(tiny_trunk(), cfg), stage, batch=2)
        out = engine(x)
        engine.backward(out.loss)
        grads.append(_grads(deepspeed, engine))
        losses.append(out.loss.item())
        engine.step()
        engines.append(engine)
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)
    for naive, efficient, plain in zip(*grads, want):
        assert (naive - efficient).abs().max().item() < 1e-6
        assert (efficient - plain).abs().max().item() < 1e-6
    for p, q in zip(engines[0].module.parameters(), engines[1].module.parameters()):
        assert (p - q).abs().max().item() < 1e-6  # the optimiser step saw the same gradients


def test_memory_efficient_heads_refuse_zero_stage_3(deepspeed):
    cfg = objective("meta", n=2, memory_efficient=True)
    engine = _engine(deepspeed, make(tiny_trunk(), cfg), 3, batch=2)
    with pytest.raises(NotImplementedError, match="ZeRO stage 3"):
        engine(rows(cfg, B=2))
