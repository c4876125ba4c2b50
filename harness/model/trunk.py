"""The Llama-style decoder trunk shared by every objective (read it in one sitting).

Bottom-up: RMSNorm, RoPE, attention, SwiGLU, block, `Trunk`; the shape it is built from,
`TrunkConfig`, lives in `config.py`, torch-free, so that recipes load without torch. Module and
parameter names are Hugging Face Llama's (`self_attn.q_proj`, `mlp.gate_proj`,
`input_layernorm`, ...), so that export to `LlamaForCausalLM` is a rename of prefixes only.
No biases anywhere, as in Llama. The trunk stops before the final norm: objectives decide
what runs between the shared layers and the shared norm + unembedding (`Trunk.logits`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from harness.model.config import TrunkConfig

# RMSNorm: torch.nn.RMSNorm (weight named `weight`, as HF's LlamaRMSNorm) computes
# x * rsqrt(mean(x^2) + eps) * weight, which is Llama's norm; no need to write our own.
RMSNorm = nn.RMSNorm


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last axis: HF Llama's RoPE layout
    (halves, not interleaved pairs), so exported weights need no permutation."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions 0..T-1, computed on the fly in fp32 as HF does, so that
    inference may run past `seq_len` (there are no learned positions)."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (hd/2,)

    def forward(self, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(T, device=self.inv_freq.device, dtype=torch.float32)
        freqs = torch.outer(positions, self.inv_freq)  # (T, hd/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (T, hd)
        return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, h, T, hd); cos, sin: (T, hd)."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class Attention(nn.Module):
    """Causal grouped-query attention: n_kv_heads key/value heads shared by n_heads queries."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int):
        super().__init__()
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache=None) -> torch.Tensor:
        """rope: cos, sin of x's positions. cache (decoding only, `harness.model.kv_cache`):
        keys and values of the positions before x's, which x's are appended to."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, h_kv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, h_kv, T, hd)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        gqa = self.n_kv_heads != self.n_heads
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)  # (B, h, T, hd)
        else:  # k, v: (B, h_kv, P+T, hd) with the P cached positions; mask: (T, P+T) causal
            k, v, mask = cache.append(k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)  # (B, h, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, d)
        return self.o_proj(y)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)) (Shazeer 2020), Llama's feed-forward."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(x)). Meta's heads and
    DeepSeek's modules are this same block."""

    def __init__(self, config: TrunkConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.self_attn = Attention(config.d_model, config.n_heads, config.n_kv_heads)
        self.post_attention_layernorm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.ffn_hidden)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache=None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


def init_linear(weight: torch.Tensor, std: float, generator: torch.Generator) -> None:
    nn.init.normal_(weight, mean=0.0, std=std, generator=generator)


def init_block(block: Block, config: TrunkConfig, generator: torch.Generator) -> None:
    """normal(0, std) matrices in a fixed order, residual projections scaled by 1/sqrt(2L)
    (GPT-2 / nanoGPT); norms start at one. L is the recipe's depth for every objective, so
    a Meta head is initialised exactly like the STP layer it replaces."""
    std, resid_std = config.init_std, config.init_std / math.sqrt(2 * config.stp_layers)
    attn, mlp = block.self_attn, block.mlp
    for weight in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight):
        init_linear(weight, std, generator)
    init_linear(attn.o_proj.weight, resid_std, generator)
    init_linear(mlp.gate_proj.weight, std, generator)
    init_linear(mlp.up_proj.weight, std, generator)
    init_linear(mlp.down_proj.weight, resid_std, generator)
    nn.init.ones_(block.input_layernorm.weight)
    nn.init.ones_(block.post_attention_layernorm.weight)


class Trunk(nn.Module):
    """Embedding, `shared_layers` blocks, and the shared final norm + unembedding.

    `shared_layers` is what the objective keeps of the recipe's L (`config.stp_layers`): L for
    STP, DeepSeek and TOP, L - n for Meta (whose heads are blocks of their own). `forward` returns the hidden state after the last
    shared layer and before the final norm; `logits` applies the norm and unembedding.
    `checkpointing` (the recipe's `train.activation_checkpointing`): each shared block keeps
    only its input for the backward and runs its forward again there (about a third more
    compute for the blocks, their activations down to one block's at a time).
    """

    def __init__(self, config: TrunkConfig, shared_layers: int, checkpointing: bool = False):
        super().__init__()
        self.config, self.checkpointing = config, checkpointing
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.layers = nn.ModuleList(Block(config) for _ in range(shared_layers))
        self.norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def init_weights(self, generator: torch.Generator) -> None:
        """Embedding, unembedding, then the layers in order: a model whose next-token path is
        longer by k head blocks draws the same numbers for its first layers."""
        init_linear(self.embed_tokens.weight, self.config.init_std, generator)
        if not self.config.tie_embeddings:
            init_linear(self.lm_head.weight, self.config.init_std, generator)
        for block in self.layers:
            init_block(block, self.config, generator)
        nn.init.ones_(self.norm.weight)

    def rope(self, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rotary(T)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(ids)  # (B, T) -> (B, T, d)

    def forward(self, ids: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, d)
        for block in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                # non-reentrant: the one torch recommends, and gradients reach parameters by
                # ordinary accumulation, where DeepSpeed's hooks see them
                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
        return x  # (B, T, d), before the final norm

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(hidden))  # (B, T, d) -> (B, T, V)
