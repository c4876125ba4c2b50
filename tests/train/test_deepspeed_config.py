"""bf16 gradients are accumulated over micro-batches in fp32 at every ZeRO stage (stage 0,
which cannot, is refused): small gradients summed in bf16 vanish against a large one."""

from __future__ import annotations

import pytest
import torch

from harness.errors import HarnessError
from harness.train.config import TrainConfig
from harness.train.deepspeed_config import build_engine, deepspeed_config
from harness.train.distributed import init_distributed


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 1, "global_batch_size": 17, "micro_batch_size": 1, **kw})


def test_bf16_asks_deepspeed_for_fp32_accumulation_and_fp32_asks_nothing():
    for stage in (1, 2, 3):
        assert deepspeed_config(_cfg(precision="bf16", zero_stage=stage), 1)["data_types"] == {"grad_accum_dtype": "fp32"}
    assert "data_types" not in deepspeed_config(_cfg(), 1)
    with pytest.raises(HarnessError, match="zero_stage >= 1"):
        deepspeed_config(_cfg(precision="bf16", zero_stage=0), 1)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_small_bf16_gradients_survive_accumulation(stage, one_thread):
    """One micro-batch's gradient is 1, sixteen more are 2^-9 each: below half a bf16 ulp of
    the running sum, so a bf16 accumulator returns ~1.000 and an fp32 one ~1.031."""
    from deepspeed.utils import safe_get_full_grad

    init_distributed("bf16")
    n = 17
    engine, _, _ = build_engine(torch.nn.Linear(1, 1, bias=False), _cfg(precision="bf16", zero_stage=stage), 1, 1)
    assert engine.get_data_types() == (torch.bfloat16, torch.float32)
    for i in range(n):
        x = torch.full((1, 1), 1.0 if i == 0 else 2.0**-9, dtype=torch.bfloat16)
        engine.backward(engine(x).sum())
        if i < n - 1:
            engine.step()  # not yet the boundary: accumulates
    summed = float(safe_get_full_grad(engine.module.weight).float().sum()) * n  # DeepSpeed scales by 1/n
    assert summed == pytest.approx(1 + 16 * 2.0**-9, abs=3e-3)
