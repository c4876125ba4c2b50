"""The Docker engine connection: one place that turns "no engine" into a fixable error."""

from __future__ import annotations

import os

from harness.errors import HarnessError, one_line


def docker_client():
    """A docker SDK client whose engine answered a ping."""
    import docker
    from docker.errors import DockerException

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        raise HarnessError(
            f"no Docker engine answers at {where} ({one_line(exc)[:200]})",
            fix="start one (apt-get install -y docker.io; dockerd &) or point DOCKER_HOST at one",
        ) from None
    return client


def engine_available() -> bool:
    """For tests and checks: True when an engine answers, without raising."""
    try:
        docker_client().close()
    except HarnessError:
        return False
    return True


def image_or_none(client, ref: str):
    from docker.errors import ImageNotFound

    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None
