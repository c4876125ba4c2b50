"""The run-directory lock: one `harness run` (or `harness sync`) writes a run directory at a time.

`RUN_DIR/run.lock` is locked with flock(2) for as long as the run lasts and names its
holder (pid, host, start time). The kernel drops the lock when the process dies, however
it dies, so a lock left by a dead process is taken over (with a message naming it) and a
live one refuses the second run in one line. flock works across the nodes of a cluster on
NFSv4 and Lustre (which map it to their own byte-range locks). The file descriptor is
not inherited by the sandbox or other children (Python opens files close-on-exec).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from harness import rundir
from harness.errors import HarnessError
from harness.fs_errors import writing

LOCK_NAME = rundir.LOCK


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", errors="replace")
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return None
    return info if isinstance(info, dict) else None


class RunLock:
    """Held from `acquire()` to `release()`; a context manager as well."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, log=print) -> None:
        # A read-only or unwritable run directory is found here first: one line, not a traceback.
        with writing(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            info = _read(fd) or {}
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise HarnessError(
                f"{self.path.parent} is in use by another harness process (pid {info.get('pid', '?')} on "
                f"{info.get('host', '?')}, {info.get('command', 'run')} since {info.get('since', '?')})",
                fix="wait for it to finish, or stop it; a second run in the same directory would double its records",
            ) from None
        previous = _read(fd)
        if previous and previous.get("pid") is not None:
            log(f"taking over the lock of {self.path.parent.name} left by pid {previous['pid']} on "
                f"{previous.get('host', '?')}, which is no longer running")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            with writing(self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(me).encode(), 0)
                os.fsync(fd)
        except BaseException:
            os.close(fd)  # closing drops the lock
            raise
        self.fd = fd

    def release(self) -> None:
        """Empty the file (a clean exit leaves no holder to report) and unlock."""
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # never needs space, so a full disk cannot stop it
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        self.acquire(log=lambda text: None)  # a dead holder's lock is simply taken
        return self

    def __exit__(self, *exc) -> None:
        self.release()

