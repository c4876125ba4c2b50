"""Peak memory per GPU of one arm's training step, and which setting would make it fit.

Data in, numbers out, no torch: a recipe's model, objective (its `footprint`) and `train:`
sections, a world size and the device kind give bytes. Each term follows the code path it
describes (DeepSpeed 0.19.8 as `train/deepspeed_config.py` configures it, torch 2.13); the
test holds the sum against torch's allocator on CPU (tests/plan/test_plan_memory.py).

Model states per rank (P parameters, N data-parallel ranks, AdamW's two fp32 moments 8P/N
from ZeRO 1 on; `_states` lists each precision and stage):
  fp32 ZeRO 0     weights 4P, gradients 4P (made by the backward), moments 8P
  bf16 ZeRO 1     bf16 weights 2P + fp32 master 4P/N; bf16 gradients 2P + DeepSpeed's fp32
                  accumulation buffer 4P (BF16_Optimizer keeps both whole, on every rank)
  bf16 ZeRO 2     2P + 4P/N; fp32 and bf16 gradient partitions 6P/N + the bf16 reduce bucket
  bf16 ZeRO 3     2P/N + 4P/N + the gathered layers; 6P/N + the bucket
After the backward, the reduction flattens buckets under 5e8 elements into a copy (ZeRO 0
and 1), then the optimizer step makes its temporaries (foreach AdamW on a GPU: one
moment-sized tensor); the larger of the two counts.

Activations per micro-batch of T = micro_batch x S positions (a: 2 bytes in bf16, 4 in fp32),
per block and position, as measured on CPU with saved-tensor hooks and read from the kernels
for CUDA: each RMSNorm saves its input and 1/rms (CUDA's fused kernel) or an fp32 copy of
its input and of the normalised value (the composite CPU path), and its output is saved by
the next matrix product; attention saves q, k, v, its output and the fp32 log-sum-exp;
SwiGLU saves gate, up, silu(gate) and their product:
  block = 2 norm + 2 a d + a (2 d + 2 kv) + 4 h + 4 a f
With `train.activation_checkpointing` a trunk block saves only its input (a d) and one
block is recomputed at a time in the backward. The heads' logits are (T, V) tensors: each
cross-entropy saves its fp32 log-probabilities (4 bytes), and its backward briefly holds two
more fp32 (T, V) tensors; `counting.Footprint` says how many each objective keeps at once
(Meta's memory-efficient heads: one).

The peak is the larger of two moments: the start of the backward (states, gradient buffers
kept across steps, every saved activation, the logits at their largest) and the optimizer
step (states, all gradients, the step's temporaries).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.model.counting import block_params

if TYPE_CHECKING:
    from harness.model.config import TrunkConfig
    from harness.recipe import Recipe

GiB = 2**30
BUCKET = 500_000_000  # elements: DeepSpeed's allreduce bucket (engine) and ZeRO reduce_bucket_size
PREFETCH = 50_000_000  # elements: ZeRO-3's stage3_prefetch_bucket_size
HEADROOM = 0.90  # of a GPU's memory: the caching allocator's fragmentation, CUDA context, NCCL


@dataclass(frozen=True)
class Setting:
    """What decides the footprint besides the recipe's shapes (the recipe gives the defaults)."""

    precision: str
    zero_stage: int
    micro_batch: int
    checkpointing: bool
    world_size: int
    device: str = "cuda"  # "cuda": fused norms, foreach AdamW; "cpu": what the test measures

    def describe(self) -> str:
        ckpt = ", activation checkpointing" if self.checkpointing else ""
        return f"{self.precision}, ZeRO {self.zero_stage}, micro-batch {self.micro_batch}{ckpt}, {self.world_size} GPUs"


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per GPU at the step's peak, by what holds them."""

    setting: Setting
    weights: float  # model weights, and fp32 master weights under mixed precision
    gradients: float  # gradient buffers alive at the peak moment
    optimizer: float  # AdamW's moments
    activations: float  # saved for the backward (blocks, norms, vectors) at the peak moment
    logits: float  # logits and log-probabilities at the peak moment
    other: float  # step temporaries, reduction copies, gradients made inside the forward
    moment: str  # "backward" or "optimizer step"
    without_checkpointing: float  # activations + logits at the start of the backward, plain
    with_checkpointing: float  # the same with every trunk block checkpointed

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.other


@dataclass(frozen=True)
class _States:
    weights: float
    held_grads: float  # allocated before the forward and kept (DeepSpeed's buffers)
    backward_grads: float  # made by the backward, freed before the next forward
    optimizer: float
    reduce_copy: float  # the reduction's flattened copy, at the end of the backward
    step_temps: float  # AdamW's temporaries, during the optimizer step


def _states(P: int, s: Setting, largest: int) -> _States:
    """Model states per rank; `largest`: the largest parameter tensor (elements)."""
    N, stage, bucket = s.world_size, s.zero_stage, min(P, BUCKET)
    opt = 8 * P if stage == 0 else 8 * P / N
    # foreach AdamW (GPU) makes one moment-sized temporary; the single-tensor path (CPU) two
    # of its largest tensor, which under ZeRO is the flat partition
    temps = 4 * (P if stage == 0 else P / N) if s.device == "cuda" else 8 * (largest if stage == 0 else P / N)
    if s.precision == "fp32":
        if stage == 0:
            return _States(4 * P, 0, 4 * P, opt, 4 * bucket, temps)
        if stage == 1:
            return _States(4 * P + 4 * P / N, 4 * P / N, 4 * P, opt, 4 * bucket, temps)
        weights = 4 * P + 4 * P / N if stage == 2 else 8 * P / N + 4 * min(P, 2 * largest + PREFETCH)
        return _States(weights, 4 * P / N, 4 * bucket, opt, 0, temps)
    if stage == 0:  # fp16 only (bf16 at stage 0 is refused): FP16_Optimizer, fp32 master and grads
        return _States(2 * P + 4 * P, 4 * P, 2 * P, opt, 0, temps)
    if stage == 1 and s.precision == "bf16":  # BF16_Optimizer (fp32 gradient accumulation)
        return _States(2 * P + 4 * P / N, 2 * P + 4 * P, 0, opt, 4 * bucket, temps)
    if stage == 1:
        return _States(2 * P + 4 * P / N, 4 * P / N, 2 * P, opt, 2 * bucket, temps)
    # ZeRO 2/3: from the backward's first gradient on, the bf16 reduce bucket and this rank's
    # bf16 gradient partition, beside the fp32 partition they are accumulated into
    weights = 2 * P + 4 * P / N if stage == 2 else 2 * P / N + 4 * P / N + 2 * min(P, 2 * largest + PREFETCH)
    return _States(weights, 6 * P / N + 2 * bucket, 0, opt, 0, temps)


def _norm(m: TrunkConfig, a: int, fused: bool) -> float:
    """What one RMSNorm saves per position, besides its output."""
    return (a * m.d_model if fused else 8 * m.d_model) + 4


def block_bytes(m: TrunkConfig, a: int, fused: bool) -> float:
    """Bytes one block saves for the backward per position."""
    d, kv, f = m.d_model, m.n_kv_heads * m.head_dim, m.ffn_hidden
    return 2 * _norm(m, a, fused) + 2 * a * d + a * (2 * d + 2 * kv) + 4 * m.n_heads + 4 * a * f


def _workspace(m: TrunkConfig, a: int) -> float:
    """A block's backward beyond what it saved: gradients of its widest intermediates."""
    return a * (3 * m.ffn_hidden + 3 * m.d_model)


def _logits_per_entry(logits: int, held: int, a: int) -> float:
    """Bytes per (position, vocabulary entry) at the logits' largest moment: the forward's end
    (log-probabilities, held logits and the fp32 copy the cross-entropy makes of bf16 logits)
    or the first cross-entropy's backward (its gradient and the log-softmax gradient, fp32)."""
    if logits == 0:
        return 0.0
    return max(4 * logits + 8, 4 * logits + a * held + (4 if a < 4 else 0))


def _activations(recipe: Recipe, s: Setting) -> tuple[float, float, float]:
    """(activations, logits, gradients made inside the forward) at the backward's peak moment."""
    m, obj = recipe.model, recipe.objective
    a = 4 if s.precision == "fp32" else 2
    fused = s.device == "cuda"
    T, V, fp = s.micro_batch * recipe.seq_len, m.vocab_size, obj.footprint(m)
    block, norm = block_bytes(m, a, fused), _norm(m, a, fused)
    trunk = obj.shared_layers(m) * (a * m.d_model if s.checkpointing else block) * T
    saved = trunk + (fp.blocks * block + fp.norms * norm + fp.vectors * a * m.d_model) * T
    g = 4 if s.precision == "fp32" else 2  # gradients come in the weights' dtype
    # the backward of heads run inside the forward scales their gradients into new tensors
    moments = [(saved, _logits_per_entry(fp.logits, fp.held_logits, a) * T * V, 2 * fp.early_grads * g)]
    if fp.sequential:  # one head inside the forward: its block, norm, unembedding input and
        # cross-entropy, its fresh gradients (block, unembedding) and their sum with the others'
        fresh = block_params(m) + 2 * (m.vocab_size * m.d_model + m.d_model)
        moments.append((saved + (block + norm + a * m.d_model) * T, _logits_per_entry(1, 1, a) * T * V,
                        (fp.early_grads + fresh) * g))
    if s.checkpointing:  # a recomputed block and its backward, the heads' tensors gone
        moments.append((trunk + (block + _workspace(m, a)) * T, 0.0, 0.0))
    return max(moments, key=sum)


def estimate(recipe: Recipe, setting: Setting | None = None) -> MemoryPlan:
    """Peak bytes per GPU of one training step of `recipe` under `setting` (default: the
    recipe's own precision, ZeRO stage, micro-batch and checkpointing on 1 GPU)."""
    s = setting or recipe_setting(recipe, 1)
    m = recipe.model
    P = recipe.objective.params(m).total
    largest = max(m.vocab_size * m.d_model, block_params(m))
    states = _states(P, s, largest)
    act, logits, early = _activations(recipe, s)
    backward = states.held_grads + act + logits + early
    step_extra = max(states.reduce_copy, states.step_temps)  # one after the other, never together
    step = states.held_grads + states.backward_grads + step_extra
    plain, ckpt = (sum(_activations(recipe, replace(s, checkpointing=c))[:2]) for c in (False, True))
    common = {"setting": s, "weights": states.weights, "optimizer": states.optimizer,
              "without_checkpointing": plain, "with_checkpointing": ckpt}
    if backward >= step:
        return MemoryPlan(gradients=states.held_grads, activations=act, logits=logits, other=early, moment="backward",
                          **common)
    return MemoryPlan(gradients=states.held_grads + states.backward_grads, activations=0.0, logits=0.0,
                      other=step_extra, moment="optimizer step", **common)


def recipe_setting(recipe: Recipe, world_size: int, device: str = "cuda") -> Setting:
    t = recipe.train
    return Setting(t.precision, t.zero_stage, t.micro_batch_size, t.activation_checkpointing, world_size, device)


def fitting_settings(recipe: Recipe, setting: Setting, capacity: float) -> list[tuple[str, MemoryPlan]]:
    """Settings that bring the peak under HEADROOM x `capacity`, cheapest first, each as the
    overrides that ask for it: ZeRO 2 (no more communication than ZeRO 1), a smaller
    micro-batch (more accumulation steps, smaller matrix products), ZeRO 3 (half as much
    communication again), activation checkpointing (a third more block compute), and their
    combinations. Never a stage the objective cannot train under, nor bf16 at stage 0."""
    t, top = recipe.train, recipe.objective.max_zero_stage
    stages = [z for z in range(setting.zero_stage, top + 1) if not (z == 0 and setting.precision == "bf16")]
    micros, mb = [], setting.micro_batch
    while mb >= 1:
        if t.global_batch_size % (mb * setting.world_size) == 0:
            micros.append(mb)
        mb //= 2
    candidates = [replace(setting, zero_stage=z, micro_batch=mb, checkpointing=c)
                  for c in sorted({setting.checkpointing, True}) for mb in micros for z in stages]
    candidates.sort(key=lambda c: (c.checkpointing, c.zero_stage == 3, -c.micro_batch, c.zero_stage))
    fits = []
    for candidate in candidates:
        plan = estimate(recipe, candidate)
        if plan.total <= HEADROOM * capacity:
            fits.append((_overrides(setting, candidate), plan))
    return fits


def _overrides(old: Setting, new: Setting) -> str:
    changes = []
    if new.zero_stage != old.zero_stage:
        changes.append(f"train.zero_stage={new.zero_stage}")
    if new.micro_batch != old.micro_batch:
        changes.append(f"train.micro_batch_size={new.micro_batch}")
    if new.checkpointing != old.checkpointing:
        changes.append(f"train.activation_checkpointing={str(new.checkpointing).lower()}")
    return " ".join(changes)


def parse_memory(text: str) -> float:
    """'80GB', '80GiB', '80G' or '80' -> bytes. GPU memory is sold in binary units (an "80GB"
    H100 has 80 GiB of HBM), so GB here means GiB."""
    value = text.strip().upper().removesuffix("B").removesuffix("I").removesuffix("G")
    try:
        gib = float(value)
    except ValueError:
        raise HarnessError(f"--gpu-memory {text!r} is not a size", fix="give it in GB, e.g. --gpu-memory 80GB") from None
    if gib <= 0:
        raise HarnessError(f"--gpu-memory {text!r} is not positive", fix="give it in GB, e.g. --gpu-memory 80GB")
    return gib * GiB
