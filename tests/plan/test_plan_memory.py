"""The memory plan against torch's allocator, and its arithmetic by hand.

Measured peak: a real step of the harness model under the DeepSpeed engine the training loop
builds (`build_engine`: forward, `engine.backward`, `engine.step`), on CPU, in fp32 at ZeRO 0
(the laptop recipes) and bf16 at ZeRO 1 (the GPU recipes, DeepSpeed's BF16_Optimizer). The
bytes come from the profiler's allocation events (`profile_memory=True`): torch's CPU
allocator reports every tensor allocation and free with its exact size while profiling, so
their running sum is the bytes tensors hold at each moment, nothing else. tracemalloc cannot
see them (torch allocates outside Python's allocator), and a process's RSS counts the C
allocator's retained pages, libraries and other threads, moves in pages and drifts with load.
The engine is built inside the profile, so every live byte of the measured (second) step is
one the profile saw allocated; frees are matched to allocations by address, in the event
tree's order (two events can share a timestamp).

What this cannot show: the CUDA path's own kernels (fused RMSNorm saves less than the CPU's
composite norm; foreach AdamW's temporaries differ from the single-tensor CPU path); the
estimate models both (`Setting.device`), but only the CPU branch is measured here.
"""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.plan.memory import GiB, Setting, estimate, fitting_settings, parse_memory, recipe_setting
from harness.recipe import load_recipe, validate_recipe
from tests.conftest import RECIPES

# Activations and logits both matter at this shape (and the states too): L=6, d=64, 4 heads
# (2 key/value), SwiGLU 176, V=512, micro-batch 4 x 64 positions.
SHAPE = {"stp_layers": 6, "d_model": 64, "n_heads": 4, "n_kv_heads": 2, "ffn_hidden": 176, "vocab_size": 512,
         "seq_len": 64}
OBJECTIVES = {"stp": {"kind": "stp"}, "meta_n4": {"kind": "meta", "n": 4}, "deepseek_d1": {"kind": "deepseek", "depth": 1}}


def small_recipe(objective: dict, precision: str, zero_stage: int, checkpointing: bool, model=SHAPE, micro: int = 4):
    return validate_recipe({"recipe_version": 1, "name": "m", "model": model, "objective": objective,
                            "train": {"steps": 3, "global_batch_size": micro, "micro_batch_size": micro,
                                      "precision": precision, "zero_stage": zero_stage,
                                      "activation_checkpointing": checkpointing}})


def measured_peak(recipe) -> int:
    """Bytes held by tensors at the peak of one training step (the second; the first
    allocates AdamW's moments), under the engine the training loop builds."""
    import torch
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile, record_function

    from harness.model.mtp_model import build_model
    from harness.train.deepspeed_config import build_engine
    from harness.train.distributed import init_distributed

    init_distributed(recipe.train.precision)
    rows = torch.randint(0, recipe.model.vocab_size, (recipe.train.micro_batch_size, recipe.objective.row_length(recipe.seq_len)),
                         generator=torch.Generator().manual_seed(1))  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        torch.manual_seed(0)
        model = build_model(recipe.model, recipe.objective, checkpointing=recipe.train.activation_checkpointing)
        engine, _, _ = build_engine(model, recipe.train, 3, 1)
        for name in ("warm-up", "measured"):
            with record_function(name):
                engine.backward(engine(rows).loss)
                engine.step()
    events, window = [], None
    stack = list(reversed(prof.profiler.kineto_results.experimental_event_tree()))
    while stack:  # depth first in the tree's order: chronological within the one thread
        node = stack.pop()
        stack.extend(reversed(node.children))
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size, node.extra_fields.ptr))
        elif node.name == "measured":
            window = (node.start_time_ns, node.end_time_ns)
    events.sort(key=lambda e: e[0])  # stable: equal timestamps keep the tree's order
    live = peak = 0
    sizes: dict[int, int] = {}
    for t, size, ptr in events:
        if size > 0:
            sizes[ptr] = size
        elif ptr in sizes:  # a free of something this profile saw allocated
            size = -sizes.pop(ptr)
        else:
            continue
        live += size
        if window[0] <= t <= window[1]:
            peak = max(peak, live)
    return peak


@pytest.mark.parametrize("precision, zero_stage", [("fp32", 0), ("bf16", 1)])
@pytest.mark.parametrize("kind", list(OBJECTIVES))
def test_estimate_holds_against_the_measured_peak_on_cpu(kind, precision, zero_stage, one_thread):
    """Within 25% of torch's measured peak, with and without activation checkpointing, and
    checkpointing lowers both."""
    found = {}
    for ckpt in (False, True):
        recipe = small_recipe(OBJECTIVES[kind], precision, zero_stage, ckpt)
        plan = estimate(recipe, recipe_setting(recipe, 1, device="cpu"))
        found[ckpt] = (plan, measured_peak(recipe))
        ratio = plan.total / found[ckpt][1]
        assert 0.75 <= ratio <= 1.25, (kind, precision, ckpt, plan, found[ckpt][1])
    (plain, plain_measured), (ckpt, ckpt_measured) = found[False], found[True]
    assert plain.moment == "backward"  # at this shape the activations decide the peak
    assert ckpt.total < plain.total and ckpt_measured < plain_measured
    assert plain.with_checkpointing < plain.without_checkpointing


def test_model_states_by_zero_stage_and_world_size_by_hand():
    """P parameters, N ranks: what each stage keeps per rank (module docstring's table)."""
    recipe = load_recipe(RECIPES / "gpu" / "stp_1b.yaml")
    P = recipe.objective.params(recipe.model).total

    def plan(stage, N):
        return estimate(recipe, Setting("bf16", stage, 8, False, N))

    z1 = plan(1, 8)
    assert (z1.weights, z1.optimizer) == (2 * P + 4 * P / 8, 8 * P / 8)
    assert z1.gradients == 2 * P + 4 * P  # BF16_Optimizer: bf16 grads and the fp32 buffer, whole
    z2 = plan(2, 8)
    assert z2.weights == z1.weights and z2.gradients == 6 * P / 8 + 2 * 500_000_000
    assert plan(3, 8).weights < z2.weights
    assert plan(1, 64).total < z1.total and plan(1, 64).gradients == z1.gradients  # more ranks shard only the master and moments
    fp32 = estimate(recipe, Setting("fp32", 0, 8, False, 1))
    assert (fp32.weights, fp32.optimizer) == (4 * P, 8 * P)


def test_logits_of_every_head_and_memory_efficient_heads():
    """DeepSeek keeps every depth's logits; Meta's memory-efficient heads hold one head's;
    naive Meta heads hold all of theirs."""
    base = load_recipe(RECIPES / "gpu" / "stp_125m.yaml")
    setting = recipe_setting(base, 8)

    def logits(objective: dict) -> float:
        return estimate(validate_recipe({**base.model_dump(mode="json"), "objective": objective}), setting).logits

    T, V = setting.micro_batch * base.seq_len, base.model.vocab_size
    assert logits({"kind": "stp"}) == 12 * T * V  # fp32 log-probabilities and the backward's two fp32 gradients
    assert logits({"kind": "meta", "n": 4, "memory_efficient": True}) == 12 * T * V
    assert logits({"kind": "meta", "n": 4, "memory_efficient": False}) == (4 * 4 + 8) * T * V
    assert logits({"kind": "deepseek", "depth": 1}) == (4 * 2 + 8) * T * V


def test_settings_that_fit_are_offered_cheapest_first_and_each_fits():
    """The 7B Meta n=4 recipe at ZeRO 1 needs more than 80 GB; the plan offers ZeRO 2 first,
    never ZeRO 3 (memory-efficient heads refuse partitioned parameters), and each offer fits."""
    recipe = load_recipe(RECIPES / "cluster" / "meta_7b_n4.yaml", ["train.zero_stage=1"])
    setting = recipe_setting(recipe, 8)
    assert estimate(recipe, setting).total > 0.9 * 80 * GiB
    fits = fitting_settings(recipe, setting, 80 * GiB)
    assert fits and fits[0][0] == "train.zero_stage=2"
    assert all(plan.total <= 0.9 * 80 * GiB and plan.setting.zero_stage <= 2 for _, plan in fits)
    assert not any("zero_stage=3" in overrides for overrides, _ in fits)
    committed = load_recipe(RECIPES / "cluster" / "meta_7b_n4.yaml")
    assert estimate(committed, recipe_setting(committed, 8)).total <= 0.9 * 80 * GiB  # the recipe as changed


def test_every_gpu_recipe_fits_80gb_on_one_node():
    for path in sorted((RECIPES / "gpu").glob("*_*.yaml")):
        recipe = load_recipe(path)
        assert estimate(recipe, recipe_setting(recipe, 8)).total <= 0.9 * 80 * GiB, path


def test_gpu_memory_sizes_parse_and_a_bad_one_is_one_line():
    assert parse_memory("80GB") == parse_memory("80GiB") == parse_memory("80") == 80 * GiB
    with pytest.raises(HarnessError, match="--gpu-memory 'lots' is not a size") as info:
        parse_memory("lots")
    assert "\n" not in str(info.value) and "--gpu-memory 80GB" in str(info.value)
