"""DeepSeek-V3-style MTP (arXiv 2412.19437 Sec. 2.2): D chained modules."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.model.objectives.base import ObjectiveBase


class LambdaStage(BaseModel):
    """lambda takes `value` once `from_tokens` training tokens have been seen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    from_tokens: int = Field(ge=0)
    value: float = Field(ge=0)


class DeepSeekConfig(ObjectiveBase):
    kind: Literal["deepseek"] = "deepseek"
    depth: int = Field(ge=1, le=16, description="D chained modules; module k predicts t+k+1")
    mtp_lambda: list[LambdaStage] = Field(
        default=[LambdaStage(from_tokens=0, value=0.3)],
        description="L = L_main + lambda/D * sum_k CE_k. A number is a constant; a list of "
        "{from_tokens, value} is piecewise by tokens seen (V3: 0.3 for the first 10T, then 0.1)",
    )

    @field_validator("mtp_lambda", mode="before")
    @classmethod
    def _constant_is_one_stage(cls, value):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return [{"from_tokens": 0, "value": value}]
        return value

    @field_validator("mtp_lambda")
    @classmethod
    def _stages_ordered(cls, stages: list[LambdaStage]) -> list[LambdaStage]:
        if not stages or stages[0].from_tokens != 0:
            raise ValueError("the first lambda stage must start at from_tokens 0")
        starts = [s.from_tokens for s in stages]
        if starts != sorted(set(starts)):
            raise ValueError(f"lambda stages must have strictly increasing from_tokens, got {starts}")
        return stages

    @property
    def n_predict(self) -> int:
        """The main head predicts t+1 and module k predicts t+k+1."""
        return self.depth + 1

    def lambda_at(self, tokens_seen: int) -> float:
        return [s.value for s in self.mtp_lambda if s.from_tokens <= tokens_seen][-1]
