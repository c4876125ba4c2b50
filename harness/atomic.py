"""Atomic, durable file writes: the one way the harness replaces a file that must survive a
crash (stage ledger, tracker state, checkpoint seals, manifests), or publishes a folder
built beside its final name (prepared data).

Write to a temporary sibling, fsync it, rename over the target, fsync the directory: after a
crash at any point the target holds either the old bytes or the new ones, never a torn
mix, and a finished rename survives a power cut. The temporary name carries the pid so two
writers never share one. A folder is published the same way: everything in it is fsynced
before the rename, so the name never points at files a power cut could still truncate.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: str | Path) -> None:
    """Make a rename (or a new entry) in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves no stray file
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_tree(root: str | Path) -> None:
    """fsync every file and folder under `root` (and `root` itself), deepest first."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(folder)


def publish_dir(tmp: str | Path, final: str | Path, *, replace: bool = False) -> None:
    """Rename the finished folder `tmp` to `final`, durably: the one way the harness puts a
    folder in place (checkpoints, exports, evaluations, converted checkpoints). With
    `replace`, an existing `final` is moved aside first and removed only once the new one is
    in place, so a crash leaves one of the two whole (`<final>.old` is the old one)."""
    import shutil

    tmp, final = Path(tmp), Path(final)
    fsync_tree(tmp)
    old = final.with_name(final.name + ".old")
    if replace and final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if replace:
        shutil.rmtree(old, ignore_errors=True)


# torch.save reports a full disk as a RuntimeError from its zip writer, not as ENOSPC.
_FULL_DISK_TEXT = ("No space left on device", "unexpected pos", "file write failed", "Disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a write that found no space (or quota) left."""
    import errno

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, RuntimeError) and any(text in str(exc) for text in _FULL_DISK_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
