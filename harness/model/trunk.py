"""The Llama-style decoder trunk shared by every objective (read it in one sitting).

Only the configuration lives here for now; the modules follow in the model issue.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrunkConfig(BaseModel):
    """Shape of the decoder. Every arm of a study differs only in its objective, not here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_layers: int = Field(
        ge=1,
        description="L, the depth of the single-token baseline. Meta-style arms keep L and "
        "turn n-1 shared layers into heads (Gloeckle et al. 2024, parameters matched).",
    )
    d_model: int = Field(ge=8, description="residual width d")
    n_heads: int = Field(ge=1, description="query heads; head_dim = d_model / n_heads")
    n_kv_heads: int = Field(ge=1, description="key/value heads (grouped-query attention)")
    ffn_hidden: int = Field(ge=1, description="SwiGLU hidden width (three d x ffn matrices)")
    vocab_size: int = Field(ge=16, description="embedding rows; a trained tokenizer gets exactly this many")
    seq_len: int = Field(ge=8, description="longest context the model is built for (RoPE table)")
    norm_eps: float = Field(default=1e-5, gt=0, description="RMSNorm epsilon")
    rope_theta: float = Field(default=10000.0, gt=0, description="RoPE base frequency")
    tie_embeddings: bool = Field(default=False, description="share input embedding and unembedding")
    init_std: float = Field(default=0.02, gt=0, description="std of the normal init of weights")

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
