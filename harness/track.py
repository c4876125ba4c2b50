"""Tracking with MLflow: the `track:` section (logging code follows in the training issue)."""

from pydantic import BaseModel, ConfigDict, Field


class TrackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    experiment: str = "mtp-harness"
    tracking_uri: str | None = Field(
        default=None, description="None: MLFLOW_TRACKING_URI if set, else MLflow's local default sqlite:///mlflow.db"
    )
    tags: dict[str, str] = {}
