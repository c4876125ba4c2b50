"""`harness container build`: the pinned image of a flavour, through the docker SDK.

An image is tagged `mtp-harness:<flavour>-<inputs hash>` and also `mtp-harness:<flavour>`
(the newest build). A build whose tag exists already is skipped: same inputs, same image.
The classic builder is used (the SDK's build API), so the Dockerfiles avoid BuildKit syntax.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.containers.context import (
    DEFAULT_BASE,
    FLAVORS,
    IMAGE_REPO,
    assemble,
    fetch_local_wheels,
    image_labels,
    image_tag,
    inputs_hash,
    source_hash,
)
from harness.containers.engine import docker_client, image_or_none
from harness.errors import HarnessError, one_line


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    id: str
    reused: bool

    @property
    def reference(self) -> str:
        """`repo:tag@sha256:...`: the name people read plus the id that cannot drift."""
        return f"{self.tag}@{self.id}"


def build_image(root: Path, flavor_name: str, base: str | None = None, ca_bundle: Path | None = None,
                rebuild: bool = False, echo=print) -> BuiltImage:
    """Build (or find) the image for the sources under `root`."""
    flavor = FLAVORS[flavor_name]
    if ca_bundle is not None and not ca_bundle.is_file():
        raise HarnessError(f"--ca-bundle {ca_bundle}: no such file",
                           fix="name a PEM file, e.g. /etc/ssl/certs/ca-certificates.crt")
    client = docker_client()
    base_ref = base or flavor.default_base
    base_id = _base_id(client, base, base_ref, echo)
    source = source_hash(root, flavor)
    inputs = inputs_hash(source, base_ref, base_id, ca_bundle)
    tag = image_tag(flavor, inputs)
    existing = image_or_none(client, tag)
    if existing is not None and not rebuild:
        echo(f"{tag} is up to date (same Dockerfile, locks, sources and base)")
        existing.tag(IMAGE_REPO, flavor.name)
        return BuiltImage(tag, existing.id, reused=True)
    wheels = fetch_local_wheels(root, flavor, echo)
    labels = image_labels(root, flavor, source, inputs, base_ref, base_id)
    with tempfile.TemporaryDirectory(prefix="mtp-harness-context-") as ctx:
        assemble(root, flavor, Path(ctx), wheels, ca_bundle)
        echo(f"building {tag} from {flavor.dockerfile} on {base_ref}")
        stream = client.api.build(path=ctx, tag=tag, buildargs={"BASE": base_ref},
                                  labels=labels, rm=True, forcerm=True, decode=True)
        _follow(stream, echo)
    image = client.images.get(tag)
    image.tag(IMAGE_REPO, flavor.name)
    echo(f"built {tag} ({image.id})")
    return BuiltImage(tag, image.id, reused=False)


def _base_id(client, base: str | None, base_ref: str, echo) -> str | None:
    """The base's image id when it is local; the local Debian default is made when missing."""
    image = image_or_none(client, base_ref)
    if image is not None:
        return image.id
    if base is None and base_ref == DEFAULT_BASE:
        from harness.containers.base import make_base

        echo(f"no local base image {base_ref}; making one (harness container base)")
        return make_base(base_ref, echo=echo)
    if "@sha256:" in base_ref:
        return None  # pinned by digest: docker pulls exactly it, the digest is in the name
    raise HarnessError(f"base image {base_ref} is not here and not pinned by digest",
                       fix="pull or import it first, or name it as IMAGE@sha256:<digest>")


def _follow(stream, echo) -> None:
    """Print the builder's progress; raise its error as one line."""
    for chunk in stream:
        if "stream" in chunk:
            text = chunk["stream"].rstrip("\n")
            if text.strip():
                echo(text)
        elif "status" in chunk:
            echo(f"{chunk['status']} {chunk.get('progress', '')}".rstrip())
        elif "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise HarnessError(f"image build failed: {one_line(detail)[:500]}",
                               fix="read the build output above; with a TLS-intercepting proxy pass "
                               "--ca-bundle /etc/ssl/certs/ca-certificates.crt")


def resolve_image(client, root: Path, flavor_name: str, explicit: str | None) -> BuiltImage:
    """The image to run: the one named, else the newest built from the current sources.

    Sources are compared by the source-sha256 label, so an image built before the code,
    the Dockerfile or a lock changed is never picked by accident.
    """
    from harness.containers.context import LABEL_PREFIX

    if explicit:
        image = image_or_none(client, explicit)
        if image is None:
            raise HarnessError(f"image {explicit} is not here",
                               fix="build it (harness container build) or load it (docker load)")
        return BuiltImage(explicit if "@" not in explicit else explicit.split("@")[0], image.id, reused=True)
    flavor = FLAVORS[flavor_name]
    source = source_hash(root, flavor)
    images = client.images.list(filters={"label": [f"{LABEL_PREFIX}source-sha256={source}",
                                                   f"{LABEL_PREFIX}flavor={flavor.name}"]})
    if not images:
        raise HarnessError(
            f"no {flavor.name} image is built from the current sources (source sha256 {source[:12]})",
            fix=f"harness container build --{flavor.name}, or name an image with --image")
    newest = max(images, key=lambda image: image.attrs.get("Created", ""))
    tags = [t for t in newest.tags if t.startswith(f"{IMAGE_REPO}:{flavor.name}-")] or newest.tags
    return BuiltImage(tags[0] if tags else newest.short_id, newest.id, reused=True)
