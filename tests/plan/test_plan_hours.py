"""Time at a stated MFU: training FLOPs over (GPUs x peak x MFU), the recomputed forward of
checkpointed blocks added, fp32 recipes on TF32 tensor cores."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.model.counting import block_flops
from harness.plan.arms import plan_arm
from harness.plan.hours import time_plan
from harness.recipe import load_recipe
from harness.train.throughput import GPU_MEMORY_GIB, GPU_PEAK
from tests.conftest import RECIPES


def test_hours_by_hand_and_checkpointing_adds_one_forward_of_the_trunk():
    recipe = load_recipe(RECIPES / "gpu" / "stp_350m.yaml")
    flops = plan_arm(recipe.name, recipe).total_flops
    plain = time_plan(recipe, flops, "H100 SXM", gpus=8, mfu=0.4)
    assert plain.seconds == pytest.approx(flops / (8 * 989e12 * 0.4))
    assert plain.gpu_hours == pytest.approx(plain.seconds * 8 / 3600)
    ckpt = time_plan(recipe, flops, "H100 SXM", gpus=8, mfu=0.4, checkpointing=True)
    forward = recipe.model.stp_layers * block_flops(recipe.model, recipe.seq_len).total / 3
    assert ckpt.recompute_flops == pytest.approx(forward * recipe.steps * recipe.tokens_per_step)
    assert 1.2 < ckpt.seconds / plain.seconds < 1.34  # the blocks' third, less the unembedding's share


def test_fp32_runs_at_the_tf32_peak_and_unknown_families_and_mfus_are_refused():
    recipe = load_recipe(RECIPES / "stp.yaml")
    assert time_plan(recipe, 1e18, "A100").peak == GPU_PEAK["A100"]["tf32"]
    with pytest.raises(HarnessError, match="unknown GPU family 'H900'"):
        time_plan(recipe, 1e18, "H900")
    with pytest.raises(HarnessError, match="--mfu 1.5"):
        time_plan(recipe, 1e18, mfu=1.5)


def test_every_gpu_family_with_a_peak_has_a_memory_size():
    assert set(GPU_MEMORY_GIB) == set(GPU_PEAK)
