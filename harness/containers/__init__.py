"""Pinned containers: the `container:` recipe section, image builds and runs through docker.

The variable below is the contract with tracking: `harness container run` exports the image
it started (`repo:tag@sha256:<image id>`) into the container, and the run records it as a tag.
Its presence also tells the harness that it already runs inside the image, so a recipe whose
`container.image` is set is not sent into a container again.
"""

from __future__ import annotations

import os

from harness.containers.config import ContainerConfig

IMAGE_ENV = "MTP_HARNESS_CONTAINER_IMAGE"

__all__ = ["IMAGE_ENV", "ContainerConfig", "container_image", "inside_container"]


def container_image() -> str | None:
    """The image this process runs in, as `repo:tag@sha256:...`; None on the host."""
    return os.environ.get(IMAGE_ENV) or None


def inside_container() -> bool:
    return container_image() is not None
