"""Checkpoints that survive crashes: written aside, checksummed, then renamed into place.

Layout under RUN_DIR/checkpoints/:
    step_000100/   DeepSpeed's files for that tag + harness_state.json + CHECKSUMS.json
    latest         the newest complete tag (replaced atomically)
    .tmp-*/        a save in progress (a crash leaves it; the next save clears it)
    *.corrupt/     a checkpoint that failed verification, kept for inspection, never used

A checkpoint is complete only once its directory has been renamed into place, and it is
trusted only if every file still matches CHECKSUMS.json, so a crash mid-write or a
truncated file falls back to the previous checkpoint instead of destroying it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from harness.atomic import atomic_write_text, fsync_dir
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.train.distributed import barrier

TAG = re.compile(r"^step_(\d+)$")


def tag_for(step: int) -> str:
    return f"step_{step:06d}"


def save(engine, ckpt_dir: Path, step: int, state: dict, *, is_main: bool, keep: int) -> Path:
    """Every rank calls this; rank 0 seals and publishes the checkpoint."""
    tag = tag_for(step)
    staging = ckpt_dir / f".tmp-{tag}"
    if is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier()
    engine.save_checkpoint(str(staging), tag=tag, client_state={"harness": state}, save_latest=False)
    barrier()
    final = ckpt_dir / tag
    if is_main:
        sealed = staging / tag
        (sealed / "harness_state.json").write_text(json.dumps(state, indent=1, sort_keys=True))
        sums = {str(p.relative_to(sealed)): sha256_file(p) for p in sorted(sealed.rglob("*")) if p.is_file()}
        atomic_write_text(sealed / "CHECKSUMS.json", json.dumps(sums, indent=1, sort_keys=True))
        if final.exists():  # a re-save of the same step: keep the old copy until the new is in place
            final.rename(ckpt_dir / f".old-{tag}")
        sealed.rename(final)
        fsync_dir(ckpt_dir)
        atomic_write_text(ckpt_dir / "latest", tag)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(ckpt_dir / f".old-{tag}", ignore_errors=True)
        _prune(ckpt_dir, keep)
    barrier()
    return final


def _complete_tags(ckpt_dir: Path) -> list[tuple[int, str]]:
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in ckpt_dir.iterdir() if p.is_dir() and (m := TAG.match(p.name))]
    return sorted(found, reverse=True)


def _prune(ckpt_dir: Path, keep: int) -> None:
    for _, tag in _complete_tags(ckpt_dir)[keep:]:
        shutil.rmtree(ckpt_dir / tag, ignore_errors=True)


def verify(path: Path) -> str | None:
    """None if the checkpoint is intact, else what is wrong with it."""
    sums_path = path / "CHECKSUMS.json"
    if not sums_path.is_file():
        return "CHECKSUMS.json is missing"
    try:
        sums = json.loads(sums_path.read_text())
    except json.JSONDecodeError:
        return "CHECKSUMS.json is unreadable"
    for name, expected in sums.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if sha256_file(file) != expected:
            return f"{name} does not match its checksum (truncated or modified)"
    return None


def load_latest(engine, ckpt_dir: Path, *, is_main: bool, log=print) -> dict | None:
    """Load the newest intact checkpoint into the engine and return its harness state.

    A checkpoint that fails verification (or that DeepSpeed cannot read) is renamed
    `*.corrupt`, reported, and the previous one is tried: nothing is deleted.
    """
    for _, tag in _complete_tags(ckpt_dir):
        path = ckpt_dir / tag
        problem = verify(path)
        if problem is None:
            try:
                _, client = engine.load_checkpoint(str(ckpt_dir), tag=tag)
            except Exception as exc:  # unreadable despite checksums: treat as corrupt
                problem = f"DeepSpeed could not load it ({type(exc).__name__}: {exc})"
            else:
                if client is None or "harness" not in client:
                    problem = "it holds no harness state"
                else:
                    return client["harness"]
        barrier()
        if is_main:
            log(f"warning: checkpoint {path} is corrupt: {problem}; kept as {path.name}.corrupt, "
                "falling back to the previous checkpoint")
            path.rename(path.with_name(path.name + ".corrupt"))
        barrier()
    return None


def check_identity(state: dict, expected: dict) -> None:
    """Refuse to resume a checkpoint made from another recipe or another corpus."""
    for key, want in expected.items():
        have = state.get(key)
        if have != want:
            raise HarnessError(
                f"the checkpoint was made with {key} {str(have)[:16]}..., this run has {str(want)[:16]}...",
                fix="resume with the same recipe and data, or start a new run directory",
            )
