"""The `container:` section of a recipe: which image a run uses and the limits it runs under.

The section is outside TRAINING_SECTIONS, so running the same recipe in or out of a container
reuses the same run directory; the image a run actually used is recorded in its tags instead
(`MTP_HARNESS_CONTAINER_IMAGE`, see `harness.containers`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmg]?$")


class ContainerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = Field(
        default=None,
        description="image to run in; None runs on the host (`harness container run` then "
        "picks the newest image built from the current sources)",
    )
    network: Literal["none", "bridge", "host"] = Field(
        default="none",
        description="none for training: nothing leaves the container; a remote MLflow server "
        "then needs bridge, or log locally and sync later",
    )
    cpus: float | None = Field(default=None, gt=0, description="CPU limit in cores; None: every host core")
    memory: str | None = Field(
        default=None, description="memory limit, docker syntax (16g, 512m); None: 90% of host memory"
    )
    pids_limit: int = Field(default=4096, ge=64, description="processes and threads; stops fork bombs from generated code")
    shm_size: str = Field(default="2g", description="/dev/shm size; torch data loader workers share tensors there")
    gpus: Literal["auto", "none", "all"] | int = Field(
        default="auto", description="auto: every GPU when the host has an NVIDIA driver, else none"
    )

    @field_validator("memory", "shm_size")
    @classmethod
    def _docker_size(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE.match(value.lower()):
            raise ValueError(f"{value!r} is not a size; use a number with b, k, m or g (e.g. 16g)")
        return value
