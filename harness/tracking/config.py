"""The `track:` section of a recipe: pure data (the store's address belongs to the machine)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrackConfig(BaseModel):
    """The `track:` section. The store's address is not part of a recipe: it belongs to the
    machine (MLFLOW_TRACKING_URI), and a recipe must mean the same run everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    experiment: str = Field(default="mtp-harness", description="MLflow experiment name")
    tags: dict[str, str] = Field(default={}, description="extra tags on the MLflow run")
    flush_every: int = Field(default=20, ge=1, description="steps between metric uploads")
