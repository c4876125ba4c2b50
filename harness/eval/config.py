"""The `eval:` section of a recipe: which benchmarks, under which protocol, with which limits."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.eval.sandbox.config import SandboxConfig

# The protocols' names before they were named for what they do rather than for the paper
# that used them; recipes and run summaries with them still read the same.
PROTOCOL_ALIASES = {"deepseek": "greedy", "meta": "sampled"}


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    tasks: list[Literal["humaneval", "mbpp"]] = ["humaneval", "mbpp"]
    protocol: Literal["greedy", "sampled"] = Field(
        default="greedy",
        description="greedy: greedy pass@1, HumanEval 0-shot and MBPP 3-shot (DeepSeek-V3 Table 4); "
        "sampled: n_samples per problem at each temperature, pass@k with the best temperature per k "
        "(Gloeckle et al. Table 1); the old names deepseek and meta are read as these",
    )
    limit: int | None = Field(default=None, ge=1, description="first N problems per task (smoke tests only)")
    batch_size: int = Field(default=8, ge=1, description="pinned: greedy scores vary with it (lm-eval PR #1992)")
    max_gen_toks: int | None = Field(
        default=None, ge=1, description="None: each task's own (HumanEval 1024, MBPP lm-eval's default 256)"
    )
    max_length: int | None = Field(
        default=None,
        ge=2,
        description="prompt+generation tokens for lm-eval, the same for every task (prompts keep max_length - "
        "max_gen_toks); None: per task, from the model's trained context (harness.eval.benchmarks.context.prompt_budget)",
    )
    backend: Literal["hf", "vllm"] = Field(
        default="hf",
        description="hf: transformers through lm-eval's HF backend with per-row stops (CPU or one GPU per rank; "
        "the ranks of a launched run share the problems); "
        "vllm: lm-eval's own vllm model, data parallel over the job's GPUs (needs vllm and a GPU)",
    )
    n_samples: int = Field(default=200, ge=1, description="meta: samples per problem and temperature (Meta used 200)")
    temperatures: list[float] = Field(
        default=[0.2, 0.4, 0.6, 0.8], min_length=1, description="meta: sampling temperatures; best per k is reported"
    )
    top_p: float = Field(default=0.95, gt=0, le=1, description="meta: nucleus sampling (bigcode and lm-eval use 0.95)")
    ks: list[int] = Field(default=[1, 10, 100], min_length=1, description="meta: pass@k reported for k <= n_samples")
    seed: int = Field(default=1234, description="lm-eval's python/numpy/torch seeds (sampling, few-shot order)")
    num_threads: int | None = Field(
        default=None, ge=1, description="torch threads while generating; 1 is fastest for laptop models on busy CPUs"
    )
    sandbox: SandboxConfig = SandboxConfig()
    per_position: bool = Field(
        default=True,
        description="harness runs: next-token loss by input position on held-out rows (eval/per_position.*); "
        "runs whether or not `enabled` is (that switch is for the code benchmarks only)",
    )
    acceptance: bool = Field(
        default=True,
        description="harness runs with extra depths (not STP): teacher-forced top-1 agreement of each depth "
        "and self-speculative greedy decoding vs plain greedy (eval/acceptance.json); independent of `enabled`",
    )
    analysis_batches: int = Field(
        default=16, ge=1,
        description="held-out rows for the analyses: up to analysis_batches x analysis_batch_size validation "
        "documents, one row each from its first token (eval/heldout.py)",
    )
    analysis_batch_size: int = Field(
        default=8, ge=1, description="rows per analysis batch (memory: n x B x S x V logits)"
    )
    canonical_nll: bool = Field(
        default=True,
        description="NLL of each HumanEval/MBPP canonical solution given its benchmark prompt, per problem "
        "(eval/nll_<task>.jsonl): a score small models move; independent of `enabled`",
    )
    trajectory: bool = Field(
        default=False,
        description="per-position loss of every kept checkpoint too (eval/per_position_trajectory.npz), for the "
        "matched-loss late-vs-early statistic; keep checkpoints along training (train.checkpoint_every, "
        "train.keep_checkpoints)",
    )
    speculative_prompts: int = Field(
        default=8, ge=1, description="prompts (held-out rows' first tokens) decoded by both greedy decoders"
    )
    speculative_prompt_tokens: int = Field(default=32, ge=1, description="tokens per prompt (at most S)")
    speculative_max_new_tokens: int = Field(default=128, ge=1, description="tokens each decoder generates per prompt")
    probes: list[Literal["induction", "polynomial"]] = Field(
        default=[], description="synthetic probes scored on the data's own test set (harness/eval/probes; the "
        "data source must be that probe; `analysis_batch_size` examples per forward); independent of `enabled`",
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _old_names(cls, value):
        return PROTOCOL_ALIASES.get(value, value)

    @model_validator(mode="after")
    def _sampling_is_possible(self) -> "EvalConfig":
        if any(t <= 0 for t in self.temperatures):
            raise ValueError("eval.temperatures must be > 0 (greedy decoding is the greedy protocol)")
        if self.protocol == "sampled" and not any(k <= self.n_samples for k in self.ks):
            raise ValueError(f"eval.ks {self.ks} are all above eval.n_samples {self.n_samples}; pass@k needs k <= n")
        return self
