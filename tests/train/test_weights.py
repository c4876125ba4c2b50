"""fp32 weights out of a bf16 checkpoint at each ZeRO stage, ZeRO-1's BF16_Optimizer layout
included (DeepSpeed's zero_to_fp32 refuses it as "not a zero checkpoint")."""

from __future__ import annotations

import pytest
import torch

from harness.train import checkpoint
from harness.train.config import TrainConfig
from harness.train.deepspeed_config import build_engine
from harness.train.distributed import init_distributed
from harness.train.weights import fp32_state_dict


@pytest.mark.parametrize("stage", [1, 2])
def test_bf16_checkpoints_give_back_the_fp32_master_weights(stage, tmp_path, one_thread):
    from deepspeed.utils import safe_get_full_fp32_param

    init_distributed("bf16")
    torch.manual_seed(0)
    cfg = TrainConfig(steps=4, global_batch_size=2, micro_batch_size=1, precision="bf16", zero_stage=stage)
    engine, _, _ = build_engine(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)), cfg, 4, 1)
    for _ in range(4):
        engine.backward(engine(torch.ones(1, 8, dtype=torch.bfloat16)).float().pow(2).mean())
        engine.step()
    checkpoint.save(engine, tmp_path, 2, {"step": 2}, is_main=True, keep=2)
    weights = fp32_state_dict(tmp_path / checkpoint.tag_for(2), stage, "bf16")
    for name, param in engine.module.named_parameters():
        master = safe_get_full_fp32_param(param)
        assert weights[name].dtype == torch.float32 and torch.equal(weights[name], master), name
