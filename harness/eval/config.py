"""The `eval:` section of a recipe: which benchmarks, under which protocol."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    tasks: list[Literal["humaneval", "mbpp"]] = ["humaneval", "mbpp"]
    protocol: Literal["deepseek", "meta"] = Field(
        default="deepseek", description="deepseek: greedy pass@1 (HumanEval 0-shot, MBPP 3-shot); meta: sampled pass@k"
    )
    limit: int | None = Field(default=None, ge=1, description="first N problems per task (smoke tests only)")
    batch_size: int = Field(default=8, ge=1, description="pinned: greedy scores vary with it (lm-eval PR #1992)")
    max_gen_toks: int = Field(default=1024, ge=1)
    per_position: bool = True
    acceptance: bool = True
