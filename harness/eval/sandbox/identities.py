"""Sandbox uids, reserved across every harness process on this host: one lock file per uid.

As root each program runs as an unprivileged uid of its own, because RLIMIT_NPROC counts the
tasks of a real uid host-wide. Before issue 24 program i of every harness process ran as
`uid_base + i`, so with two scorings at once (`harness study --workers 2` runs two
evaluations) a thread hog in one made a correct ThreadPoolExecutor program in the other fail
with "can't start new thread". A sandbox now holds, for its lifetime, an exclusive flock on
`<lock dir>/<uid>` for each uid it runs programs as, and passes over uids that another
process holds or that a live process still runs as (a program of a harness killed without
its cgroup). The kernel drops a flock when its holder dies, even by SIGKILL, so a crash leaves
nothing to clean up.

As an ordinary user no uid is switched: bwrap gives each program a user namespace of its
own, and the kernel counts RLIMIT_NPROC per namespace (since Linux 5.14), so nothing needs
reserving there.

Why by hand: `fcntl.flock` is the whole mechanism. Lock-file packages (`filelock`, ...)
wrap that same call for one named lock and add nothing to "the first N free of a range";
the checks on the lock directory below are what a root process writing under /run or /tmp
needs anyway.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from harness.errors import HarnessError

# Every harness process on the host must pick the same directory: the first whose parent
# exists wins (/run on any systemd or container host).
LOCK_DIRS = (Path("/run/mtp-harness-uids"), Path("/tmp/mtp-harness-uids"))
SEARCH = 65_536  # uids tried past uid_base before giving up


class Identities:
    """The uids one sandbox holds; `release` (or the process's end) frees them."""

    def __init__(self, uids: list[int], fds: list[int]):
        self.uids, self._fds = uids, fds

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the last descriptor drops the flock
        self._fds = []


def lock_dir() -> Path:
    """The host's uid-lock directory, made root-only; refused if anyone else could write it."""
    directory = next((d for d in LOCK_DIRS if d.parent.is_dir()), LOCK_DIRS[-1])
    directory.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise HarnessError(f"{directory} is not a directory only this user may write, so sandbox uids cannot be reserved",
                           fix="remove it (it holds nothing but lock files) and run again")  # fmt: skip
    return directory


def reserve(base: int, count: int) -> Identities:
    """`count` uids from `base` up that no other sandbox on this host holds and no process runs as."""
    directory, busy = lock_dir(), _running_uids()
    uids: list[int] = []
    fds: list[int] = []
    for uid in range(base, base + SEARCH):
        if len(uids) == count:
            break
        if uid in busy:
            continue
        fd = os.open(directory / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        uids.append(uid)
        fds.append(fd)
    if len(uids) < count:
        Identities(uids, fds).release()
        raise HarnessError(f"no {count} free sandbox uids in [{base}, {base + SEARCH}): other harness processes hold them",
                           fix="wait for them to finish, or set eval.sandbox.uid_base to another range")  # fmt: skip
    return Identities(uids, fds)


def _running_uids() -> set[int]:
    """Real uids of the live processes this process can see (RLIMIT_NPROC counts real uids)."""
    uids = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Uid:"):
                        uids.add(int(line.split()[1]))
                        break
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return uids
