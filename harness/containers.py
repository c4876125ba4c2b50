"""Containers: the `container:` section (docker build/run follows in the containers issue)."""

from pydantic import BaseModel, ConfigDict, Field


class ContainerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = Field(default=None, description="image to run in; None runs on the host")
