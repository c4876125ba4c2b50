"""Build contexts: what goes into an image, and the content hash that names it.

The build command assembles a small context directory instead of sending the repository:
the flavour's Dockerfile, its lock (always called `requirements.lock` inside), the build-tool
lock, the package sources under `src/`, wheels that exist only locally under `wheels/` (the
CPU torch build) and the optional CA bundle under `certs/`. The image tag is the sha256 of
exactly these inputs plus the base image, so equal tags mean equal inputs, and
`harness container run` can find the image built from the current sources by a label.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, one_line
from harness.hashing import sha256_file, sha256_named

IMAGE_REPO = "mtp-harness"
LABEL_PREFIX = "mtp-harness."
# The local Debian base (`harness container base`: debootstrap + docker import), the default
# of both flavours: our machines reach Debian's mirror and PyPI, no image registry.
DEFAULT_BASE = "mtp-harness-base:bookworm"
# The CUDA Dockerfile's ARG default, for sites that reach NVIDIA's registry (`--nvidia-base`);
# tests/containers/test_container_files.py checks that the two agree.
NVIDIA_CUDA_BASE = ("nvidia/cuda:13.0.1-runtime-ubuntu24.04"
                    "@sha256:c3fde347d52d578c84fd644bc177bc7ec333feaf11550d990da4084d7612e4c7")


@dataclass(frozen=True)
class Flavor:
    name: str
    dockerfile: str
    lock: str
    default_base: str


# The CUDA flavour needs no CUDA base image: torch's PyPI wheel and the nvidia-* wheels in
# requirements.lock carry the CUDA runtime, cuDNN and NCCL; only the driver (libcuda) comes
# from the host, mounted by the NVIDIA container toolkit. Its lock resolves identically for
# Python 3.11 (Debian bookworm) and 3.12 (Ubuntu 24.04 under nvidia/cuda); lock.sh checks it.
# The vLLM flavour is the CUDA one with vLLM's own lock (containers/vllm.in): vLLM pins its torch
# (2.14.0), so that image's torch differs from the other two; it is resolved for the Debian
# base's Python 3.11 only (containers/lock.sh says why).
FLAVORS = {
    "cpu": Flavor("cpu", "Dockerfile.cpu", "requirements-cpu.lock", DEFAULT_BASE),
    "cuda": Flavor("cuda", "Dockerfile", "requirements.lock", DEFAULT_BASE),
    "vllm": Flavor("vllm", "Dockerfile", "requirements-vllm.lock", DEFAULT_BASE),
}
BUILD_TOOLS_LOCK = "build-tools.lock"
# What pip needs to build the package: pyproject.toml names README.md as the long description.
PACKAGE_FILES = ("pyproject.toml", "README.md")
PACKAGE_DIR = "harness"


@dataclass(frozen=True)
class LockedWheel:
    """A lock entry with a local version (`torch==2.13.0+cpu`): no public index serves it."""

    name: str
    version: str
    hashes: frozenset[str]


def package_sources(root: Path) -> list[Path]:
    """Files of the installable package, relative to root, in a stable order."""
    files = [Path(name) for name in PACKAGE_FILES]
    for path in sorted((root / PACKAGE_DIR).rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix not in (".pyc", ".pyo"):
            files.append(rel)
    missing = [str(f) for f in files if not (root / f).is_file()]
    if missing:
        raise HarnessError(f"{root}: not an mtp-harness source tree (missing {', '.join(missing)})",
                           fix="run from the repository root")
    return files


def source_hash(root: Path, flavor: Flavor) -> str:
    """sha256 of the Dockerfile, the locks and the package sources (not the base image)."""
    containers = root / "containers"
    items = [(f"containers/{name}", (containers / name).read_bytes())
             for name in (flavor.dockerfile, flavor.lock, BUILD_TOOLS_LOCK)]
    items += [(str(rel), (root / rel).read_bytes()) for rel in package_sources(root)]
    return sha256_named(items)


def inputs_hash(source: str, base: str, base_id: str | None, ca_bundle: Path | None) -> str:
    """sha256 of everything that decides the image: sources, base image and CA bundle."""
    items = [("source", source.encode()), ("base", base.encode()), ("base-id", (base_id or "").encode())]
    if ca_bundle is not None:
        items.append(("ca-bundle", ca_bundle.read_bytes()))
    return sha256_named(items)


def image_tag(flavor: Flavor, inputs: str) -> str:
    return f"{IMAGE_REPO}:{flavor.name}-{inputs[:12]}"


def locked_local_wheels(lock_text: str) -> list[LockedWheel]:
    """Entries pinned to a local version label (`+cpu`), with their hashes."""
    wheels = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock_text):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+\+\S+)", block)
        if match:
            hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
            wheels.append(LockedWheel(match.group(1), match.group(2), hashes))
    return wheels


def _matching_wheel(directory: Path, wheel: LockedWheel) -> Path | None:
    stem = wheel.name.replace("-", "_")
    for path in sorted(directory.glob(f"{stem}-{wheel.version}-*.whl")):
        if sha256_file(path) in wheel.hashes:
            return path
    return None


def fetch_local_wheels(root: Path, flavor: Flavor, echo=print) -> list[Path]:
    """Wheels the lock pins to a local version, found in containers/wheels/ or fetched there.

    pip on the host knows where such wheels live (a find-links directory, a local index);
    `pip download` asks it, and the file is kept only if its sha256 is one the lock allows.
    """
    directory = root / "containers" / "wheels"
    directory.mkdir(exist_ok=True)
    found = []
    for wheel in locked_local_wheels((root / "containers" / flavor.lock).read_text()):
        path = _matching_wheel(directory, wheel)
        if path is None:
            echo(f"fetching {wheel.name}=={wheel.version} into {directory} with the host's pip")
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(directory),
                 f"{wheel.name}=={wheel.version}"], capture_output=True, text=True)
            path = _matching_wheel(directory, wheel)
            if path is None:
                why = one_line(proc.stderr)[-300:] if proc.returncode else "its sha256 is not in the lock"
                raise HarnessError(
                    f"no wheel for {wheel.name}=={wheel.version} matching {flavor.lock} ({why})",
                    fix=f"put the wheel the lock names into {directory} "
                    f"(e.g. pip download {wheel.name}=={wheel.version} --no-deps -d {directory} "
                    "--index-url https://download.pytorch.org/whl/cpu)")
        found.append(path)
    return found


def assemble(root: Path, flavor: Flavor, dest: Path, wheels: list[Path], ca_bundle: Path | None) -> None:
    """Write the build context into `dest` (an empty directory)."""
    containers = root / "containers"
    shutil.copyfile(containers / flavor.dockerfile, dest / "Dockerfile")
    shutil.copyfile(containers / flavor.lock, dest / "requirements.lock")
    shutil.copyfile(containers / BUILD_TOOLS_LOCK, dest / BUILD_TOOLS_LOCK)
    for sub in ("wheels", "certs", "src"):
        (dest / sub).mkdir()
        # COPY of a directory needs something in it on the classic builder.
        (dest / sub / ".keep").write_text("")
    for wheel in wheels:
        shutil.copyfile(wheel, dest / "wheels" / wheel.name)
    if ca_bundle is not None:
        # update-ca-certificates only reads *.crt files.
        shutil.copyfile(ca_bundle, dest / "certs" / "host-ca-bundle.crt")
    for rel in package_sources(root):
        target = dest / "src" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)


def git_revision(root: Path) -> str:
    """The commit the sources come from, `-dirty` when the tree differs from it."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def image_labels(root: Path, flavor: Flavor, source: str, inputs: str, base: str, base_id: str | None) -> dict[str, str]:
    """OCI labels plus the harness's own, which `container run` looks images up by."""
    from harness import __version__

    lock_sha = sha256_file(root / "containers" / flavor.lock)
    labels = {
        "org.opencontainers.image.title": "mtp-harness",
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.revision": git_revision(root),
        "org.opencontainers.image.base.name": base,
        f"{LABEL_PREFIX}flavor": flavor.name,
        f"{LABEL_PREFIX}lock-sha256": lock_sha,
        f"{LABEL_PREFIX}source-sha256": source,
        f"{LABEL_PREFIX}inputs-sha256": inputs,
    }
    if base_id:
        labels["org.opencontainers.image.base.digest"] = base_id
    return labels
