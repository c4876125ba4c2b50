"""Pinned containers: the `container:` recipe section, image builds and runs through docker.

The variable below is the contract with tracking, the one place it is named: `harness
container run` and the Slurm scripts (`launch/sbatch.py`) export the image they started
(`repo:tag@sha256:<image id>`, or the image file) into the container, and the run records it
as a tag (`provenance.run_tags`).
"""

from __future__ import annotations

import os

from harness.containers.config import ContainerConfig

IMAGE_ENV = "MTP_HARNESS_CONTAINER_IMAGE"

__all__ = ["IMAGE_ENV", "ContainerConfig", "container_image"]


def container_image() -> str | None:
    """The image this process runs in, as `repo:tag@sha256:...`; None on the host."""
    return os.environ.get(IMAGE_ENV) or None
