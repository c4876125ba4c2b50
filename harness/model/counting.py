"""Counting what a model costs: parameters by role and training FLOPs per position, the
shared pieces every objective's totals are built from (`objectives/<kind>.py`), and MFU.

Parameters (no biases anywhere; d = d_model, f = ffn_hidden, V = vocab, h_kv = n_kv_heads,
hd = head_dim, L = model.stp_layers):
    block      = 2 d^2 + 2 d h_kv hd   (Wq, Wo; Wk, Wv)   + 3 d f (SwiGLU)   + 2 d (norms)
    embedding  = V d, plus V d for the unembedding unless tied

Training FLOPs per input position (forward + backward = 3 x forward, 2 FLOPs per
multiply-add; only matrix products are counted, as `torch.utils.flop_counter` does; norms,
softmax and activations are under 1% at any size we run):
    linear     6 * (weights of the matrices) per pass
    attention  12 * S * d per block pass (QK^T and AV over the full S x S square: the flop
               counter and PaLM's 6N + 12 L H Q T formula ignore the causal mask, and so do we)
    unembed    6 * V * d per output-head pass
Every head runs at all S positions (a row of S+n tokens), so counts do not depend on
`target_window`; truncation only masks targets.

A frozen part (`train.freeze`) costs less. Each product's 6 FLOPs per weight are 2 forward,
2 for the gradient of its input and 2 for the gradient of its weight; the weight's third goes
when it is frozen, the input's when nothing before the product learns (autograd then asks for
no gradient there). So a frozen trunk under trainable heads costs its forward only (2 per
weight, 4 S d of attention), a frozen unembedding under a trainable head 4 V d (the gradient
still passes through it to the head). Inside a block whose weights learn, every product needs
its input's gradient (the norms' gains learn too), so such a block costs the full 6.

Memory (`Footprint`): what a training forward keeps alive for its backward outside the
trunk's own blocks, as counts of things whose sizes `plan/memory.py` knows (blocks, norms,
d-wide vectors, (S, V) logits); each objective states its own beside its FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.model.config import TrunkConfig


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by role. `trunk` is the shared path, `heads` what the objective adds."""

    embedding: int
    trunk: int
    heads: int

    @property
    def total(self) -> int:
        return self.embedding + self.trunk + self.heads

    @property
    def non_embedding(self) -> int:
        return self.trunk + self.heads


@dataclass(frozen=True)
class Flops:
    """Training FLOPs per input position, forward + backward, by where they are spent."""

    linear: float
    attention: float
    unembedding: float

    @property
    def total(self) -> float:
        return self.linear + self.attention + self.unembedding

    def __add__(self, other: "Flops") -> "Flops":
        return Flops(self.linear + other.linear, self.attention + other.attention, self.unembedding + other.unembedding)

    def __rmul__(self, passes: int) -> "Flops":
        """`k * flops`: k passes of the same computation."""
        return Flops(passes * self.linear, passes * self.attention, passes * self.unembedding)


@dataclass(frozen=True)
class Footprint:
    """What one training step of an objective holds beyond the trunk's shared blocks, per input
    position (counts; `plan/memory.py` turns them into bytes at a dtype and batch).

    Saved until the backward: `blocks` (block passes outside the trunk, e.g. DeepSeek's
    modules), `norms` (RMSNorms outside blocks: each saves its input and 1/rms), `vectors`
    (other d-wide tensors in the activation dtype: the unembedding's input, DeepSeek's
    [emb; h]), `logits` (fp32 (S, V) log-probabilities of each cross-entropy, and TOP's target
    distribution). `held_logits`: (S, V) logits in the activation dtype that stay alive until
    the forward returns (DeepSeek keeps every depth's; a head computed and dropped counts 1).
    `sequential`: heads (one block each, sharing the final norm and unembedding) run forward
    *and* backward inside the forward, one at a time (Meta's memory-efficient heads: one head's
    block, norm and logits alive at once), and `early_grads`: parameters whose gradients that
    forward already holds.
    """

    blocks: int = 0
    norms: int = 1
    vectors: int = 1
    logits: int = 1
    held_logits: int = 1
    sequential: int = 0
    early_grads: int = 0


def block_matrix_params(m: TrunkConfig) -> int:
    d = m.d_model
    return 2 * d * d + 2 * d * m.n_kv_heads * m.head_dim + 3 * d * m.ffn_hidden


def block_params(m: TrunkConfig) -> int:
    return block_matrix_params(m) + 2 * m.d_model


def embedding_params(m: TrunkConfig) -> int:
    return m.vocab_size * m.d_model * (1 if m.tie_embeddings else 2)


def trains(freeze: str) -> tuple[bool, bool]:
    """Under `train.freeze`: (the next-token path learns: embedding, its blocks, final norm;
    the unembedding learns)."""
    return freeze == "none", freeze in ("none", "trunk")


def _passes(weights: bool, inputs: bool) -> float:
    """FLOPs per weight of a product: forward, its input's gradient, its weight's gradient."""
    return 2.0 * (1 + inputs + weights)


def block_flops(m: TrunkConfig, seq_len: int, weights: bool = True, inputs: bool = True) -> Flops:
    """One pass of one block at each of S positions, per position. `weights`: its weights
    learn; `inputs`: something before it learns. Attention (no weights) runs backward when
    either holds: 4 S d forward, 8 S d backward."""
    backward = weights or inputs
    return Flops(linear=_passes(weights, backward) * block_matrix_params(m),
                 attention=4.0 * (1 + 2 * backward) * seq_len * m.d_model, unembedding=0.0)


def linear_flops(weights: int, learns: bool = True, inputs: bool = True) -> Flops:
    """One pass of a bias-free linear map with this many weights, per position."""
    return Flops(linear=_passes(learns, inputs) * weights, attention=0.0, unembedding=0.0)


def unembedding_flops(m: TrunkConfig, weights: bool = True, inputs: bool = True) -> Flops:
    """One pass of a V x d output head (the shared unembedding or an extra one), per position."""
    return Flops(linear=0.0, attention=0.0, unembedding=_passes(weights, inputs) * m.vocab_size * m.d_model)


def mfu(flops_per_token: float, tokens_per_second: float, peak_flops: float) -> float:
    """Model FLOPs utilisation (PaLM Appendix B): achieved over peak, from the same count."""
    return flops_per_token * tokens_per_second / peak_flops
