"""Where a run came from: code commit, package versions, host and container image.

Recorded in every run directory and as MLflow tags, because "the same recipe gives the
same numbers" only holds for the same code in the same environment.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from harness.containers import container_image

PACKAGES = ("mtp-harness", "torch", "deepspeed", "lm-eval", "transformers", "tokenizers", "mlflow", "numpy")
# Lets a process without the .git directory (an image, a copied tree) state its commit.
COMMIT_ENV = "MTP_HARNESS_GIT_COMMIT"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state(path: Path | None = None) -> dict[str, str]:
    """Commit and dirty flag of the repository holding the harness source, if any."""
    if os.environ.get(COMMIT_ENV):
        return {"commit": os.environ[COMMIT_ENV], "dirty": os.environ.get("MTP_HARNESS_GIT_DIRTY", "unknown")}
    root = path or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": commit, "dirty": str(dirty).lower()}


def environment() -> dict[str, str]:
    """Every installed distribution and version (a `pip freeze` without the subprocess)."""
    return {d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}


def run_tags(recipe_hash: str, training_hash: str, world_size: int) -> dict[str, str]:
    git = git_state()
    tags = {
        "harness.recipe_hash": recipe_hash,
        "harness.training_hash": training_hash,
        "harness.git_commit": git["commit"],
        "harness.git_dirty": git["dirty"],
        "harness.host": socket.gethostname(),
        "harness.world_size": str(world_size),
        "harness.container_image": container_image() or "none",
    }
    tags.update({f"version.{k}": v for k, v in versions().items()})
    return tags
