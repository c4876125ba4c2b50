"""Filesystem errors where the harness writes its own files (a run directory, the runs root):
one line naming the path, what the filesystem said and the fix.

A read-only mount, a directory this user may not write, a full disk or a spent quota is the
machine's state, not a bug: it gets no traceback, and it is never reported as the fault of
whatever the harness was talking to at the time (the tracking store, the data cache).
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path

from harness.errors import HarnessError

_WHAT = {
    errno.EROFS: ("cannot write {path}: it is on a read-only file system",
                  "remount it read-write, or copy the run directory to a writable disk and run there"),
    errno.EACCES: ("cannot write {path}: this user may not",
                   "give this user write access to it (chown/chmod), or run as its owner"),
    errno.ENOSPC: ("no space left on {path}", "free space there and run the same command again"),
    errno.EDQUOT: ("disk quota exceeded on {path}", "free space or raise the quota, then run the same command again"),
}
_WHAT[errno.EPERM] = _WHAT[errno.EACCES]
ERRNOS = frozenset(_WHAT)


class RunDirError(HarnessError):
    """The filesystem refused a write under a run directory (or the runs root)."""


def filesystem_error(exc: BaseException | None) -> OSError | None:
    """The read-only / permission / space error in `exc` or what it wraps, if any."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def explain(exc: OSError, where: str | Path | None = None, *, stage: str | None = None) -> RunDirError:
    """One line: the path (the one the OS named, else `where`), what is wrong, the fix."""
    what, fix = _WHAT[exc.errno]
    during = f" (the {stage} stage stopped; finished stages and checkpoints are kept)" if stage else ""
    return RunDirError(what.format(path=exc.filename or where or "?") + during, fix=fix)


def is_under(exc: OSError, root: str | Path) -> bool:
    """Whether the OS named a path inside `root` (the run directory, not a store's files)."""
    if not exc.filename:
        return False
    try:
        Path(exc.filename).resolve().relative_to(Path(root).resolve())
    except (ValueError, OSError):
        return False
    return True


@contextmanager
def writing(where: str | Path):
    """Writes under `where`: a read-only / permission / space error becomes one line."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in ERRNOS:
            raise
        raise explain(exc, where) from None
