"""The `model:` section of a recipe: the decoder's shape, and the checkpoint it may start from.

Torch-free on purpose: recipes, plans and `harness --help` read this class, and they start
in well under a second only because nothing on their path imports torch (`trunk.py` builds
the modules from it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrunkConfig(BaseModel):
    """Shape of the decoder. Every arm of a study differs only in its objective, not here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stp_layers: int = Field(
        ge=1,
        description="L, the depth of the single-token baseline; each objective says what it "
        "keeps of it: Meta with n heads shares L-n layers and adds n one-layer heads "
        "(Gloeckle et al. 2024, parameters matched), DeepSeek and TOP keep all L and add theirs",
    )
    d_model: int = Field(ge=8, description="residual width d")
    n_heads: int = Field(ge=1, description="query heads; head_dim = d_model / n_heads")
    n_kv_heads: int = Field(ge=1, description="key/value heads (grouped-query attention)")
    ffn_hidden: int = Field(ge=1, description="SwiGLU hidden width (three d x ffn matrices)")
    vocab_size: int = Field(ge=16, description="embedding rows; a trained tokenizer gets exactly this many")
    seq_len: int = Field(ge=8, description="longest context the model is trained for (positions are RoPE, not learned)")
    norm_eps: float = Field(default=1e-5, gt=0, description="RMSNorm epsilon")
    rope_theta: float = Field(default=10000.0, gt=0, description="RoPE base frequency")
    tie_embeddings: bool = Field(default=False, description="share input embedding and unembedding")
    init_std: float = Field(
        default=0.02,
        gt=0,
        description="std of the normal init of weights; residual output projections (o_proj, "
        "down_proj) get init_std / sqrt(2 L), as GPT-2 does, so the residual stream's variance "
        "does not grow with depth",
    )
    init_from: str | None = Field(
        default=None,
        description="start from a pretrained model: a local Hugging Face directory (Llama config.json, "
        "safetensors weights, tokenizer; a harness export qualifies), relative to the recipe's "
        "directory. The fields above then come from its config.json (a stated value must agree), "
        "the data uses its tokenizer, and the objective initialises its own parameters from it "
        "(model/pretrained_config.py, model/pretrained.py). Nothing is downloaded",
    )

    @model_validator(mode="after")
    def _shapes_fit(self) -> "TrunkConfig":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} must be divisible by n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for RoPE")
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads
