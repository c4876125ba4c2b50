"""Local base images: Debian made by debootstrap and imported, for machines with no registry.

`docker build` needs a base image, and our machines reach Debian's package mirrors but no
image registry. `debootstrap --variant=minbase` builds a minimal Debian root from the mirror
(~1-2 min), and `docker import` turns its tarball into an image. The image id is recorded in
every image built on it (label org.opencontainers.image.base.digest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.containers.context import DEFAULT_BASE
from harness.containers.engine import docker_client
from harness.errors import HarnessError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"  # its python3 is 3.11, which requirements-cpu.lock is resolved for


def make_base(tag: str = DEFAULT_BASE, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR,
              echo=print) -> str:
    """debootstrap a minimal Debian, import it as `tag`; returns the image id."""
    if shutil.which("debootstrap") is None:
        raise HarnessError("debootstrap is not installed, so no local base image can be made",
                           fix="apt-get install -y debootstrap, or build on an image you have: --base IMAGE")
    if os.geteuid() != 0:
        raise HarnessError("debootstrap needs root to make a base image",
                           fix="run `harness container base` as root once, or name a base you have: --base IMAGE")
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="mtp-harness-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        echo(f"debootstrap --variant=minbase {suite} from {mirror} (a minute or two)")
        _run(["debootstrap", "--variant=minbase", suite, str(rootfs), mirror], echo)
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        tarball = Path(tmp) / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], echo)
        repository, _, label = tag.partition(":")
        echo(f"docker import -> {tag}")
        client.api.import_image(src=str(tarball), repository=repository, tag=label or "latest",
                                changes=["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]'])
    image_id = client.images.get(tag).id
    echo(f"base image {tag} ({image_id})")
    return image_id


# debootstrap's milestones; its per-package lines would be a hundred more.
_PROGRESS = ("I: Retrieving Release", "I: Retrieving Packages", "I: Resolving dependencies",
             "I: Installing core packages", "I: Configuring required packages", "I: Base system installed")


def _run(argv: list[str], echo) -> None:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if line.startswith(_PROGRESS):
            echo("  " + line.rstrip())
    if proc.wait():
        raise HarnessError(f"{argv[0]} failed (exit {proc.returncode}): {' | '.join(tail[-3:])}",
                           fix="check the mirror (--mirror) and free disk space")
