"""How a sandboxed program is launched: the bubblewrap, unshare and unisolated command lines.

Three kinds, strongest first. All of them run `python -c <entry.py>`, which sets rlimits
and the seccomp filter (`seccomp.py`: no nested namespaces, no setsid, no SysV IPC or memfd,
nothing that counts against a host-wide limit) before the program's first line, and the harness puts the whole process tree in one cgroup
when it can (`cgroups.py`).

- `bwrap`: bubblewrap with new pid, net, ipc, uts and cgroup namespaces; a view of the
  system directories and the interpreter's prefixes only (no /etc, and nothing of /home,
  /root or the project beyond the interpreter), all read-only, and `/` and `/dev` remounted
  read-only after setup; private size-capped tmpfs on /tmp (the working directory) and
  /dev/shm; an empty /dev/pts (no ptys: their count is host-wide); `--die-with-parent`,
  `--new-session`. As an ordinary user this is `--unshare-all` plus a user namespace of its
  own per program, with `--disable-userns`.
  As root it is the same set minus the user namespace: one would map the sandbox to host
  uid 0, which the kernel exempts from RLIMIT_NPROC; instead the entry starts with only
  CAP_SETUID/CAP_SETGID and switches to an unprivileged uid of the program's own.
- `unshare` (root only, when bwrap is missing): util-linux `unshare` with new net, pid,
  mount, ipc, uts and cgroup namespaces; the entry, still root in the new mount namespace,
  remounts every mount read-only and mounts private tmpfs (size and inode capped) on /tmp,
  /var/tmp and /dev/shm and an empty one on /dev/pts (so the host's /dev/ptmx opens no pty),
  then switches uid. The host's file system stays *readable* where its permissions let the
  program's uid read (bwrap shows only the interpreter). As an ordinary user `unshare` would
  leave the program the user's own write access (a user namespace maps it to the user), so
  it is refused there.
- `none`: no isolation, rlimits and seccomp only. Used only when the user asks for it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

# Directories a Python interpreter needs from the host; symlinks (merged /usr) are recreated.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SANDBOX_WORKDIR = "/tmp"
KINDS = ("bwrap", "unshare", "none")
NO_BWRAP_FIX = "install bubblewrap (apt-get install -y bubblewrap)"


@dataclass(frozen=True)
class Launch:
    """One launch recipe: the argv prefix, the working directory and who runs the program."""

    kind: str
    prefix: tuple[str, ...]
    host_workdir: bool  # True: the caller creates a private temp dir on the host as cwd
    switch_uid: bool  # the entry switches to the program's own unprivileged uid (root only)
    private_mounts: bool  # the entry makes the mounts read-only and /tmp private (unshare)


def available_kinds() -> list[str]:
    """Isolation kinds whose tool is installed and usable by this user, strongest first."""
    kinds = ["bwrap"] if shutil.which("bwrap") else []
    if shutil.which("unshare") and os.geteuid() == 0:
        kinds.append("unshare")
    return kinds + ["none"]


def launch_for(kind: str, python_dirs: list[str], *, tmpfs_mb: int, switch_uid: bool = True) -> Launch:
    """The command prefix that runs `python -c ENTRY` under the given isolation kind.
    As root the program switches to its own uid unless `switch_uid` is False (`none` only)."""
    root = os.geteuid() == 0
    if kind == "bwrap":
        return Launch("bwrap", tuple(bwrap_prefix(python_dirs, root=root, tmpfs_mb=tmpfs_mb)), False, root, False)
    if kind == "unshare":
        if not root:
            raise HarnessError(
                "the unshare sandbox is refused for an ordinary user: the program would keep your write access "
                "to /tmp, /var/tmp, /dev/shm and your files",
                fix=NO_BWRAP_FIX,
            )
        namespaces = ["--net", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "--mount-proc"]
        return Launch("unshare", ("unshare", *namespaces, "--ipc", "--uts", "--cgroup"), False, True, True)
    if kind == "none":
        return Launch("none", (), True, root and switch_uid, False)
    raise ValueError(f"unknown sandbox kind {kind!r}")


def bwrap_prefix(python_dirs: list[str], *, root: bool, tmpfs_mb: int) -> list[str]:
    if root:
        # --unshare-all minus the user namespace (see the module docstring), and only the two
        # capabilities the entry needs to switch to the unprivileged uid.
        argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns"]
    argv += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
    size = str(tmpfs_mb << 20)
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--perms", "1777", "--tmpfs", "/dev/shm"]
    # bwrap's /dev has a devpts of its own, but `kernel.pty.max` counts ptys host-wide: an
    # empty read-only /dev/pts leaves /dev/ptmx (a link into it) nothing to open.
    argv += ["--perms", "0555", "--tmpfs", "/dev/pts", "--remount-ro", "/dev/pts"]
    argv += ["--size", size, "--perms", "1777", "--tmpfs", SANDBOX_WORKDIR]
    # After the tmpfs: bwrap applies its operations in order, so an interpreter that lives
    # under /tmp (a project cloned into /tmp, pytest's tmp dirs) is bound on top of the
    # private /tmp instead of being hidden by it.
    argv += _interpreter_binds(python_dirs)
    # bwrap's own / and /dev are uncapped tmpfs, writable by the program's uid in a user
    # namespace: read-only once set up (device nodes stay usable; /tmp and /dev/shm are
    # separate mounts).
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_WORKDIR]
    return argv


def _interpreter_binds(python_dirs: list[str]) -> list[str]:
    """Read-only binds of the interpreter's prefixes that the system binds do not cover.

    bwrap creates missing parent directories with mode 0700, which the unprivileged uid could
    not traverse, so each parent is created explicitly with 0755 first.
    """
    covered = [Path(d) for d in SYSTEM_DIRS]
    made: set[Path] = {Path("/"), Path(SANDBOX_WORKDIR)}  # the tmpfs is mounted by then
    argv: list[str] = []
    for directory in _outermost(python_dirs):
        path = Path(directory)
        if any(path == c or c in path.parents for c in covered):
            continue
        for parent in reversed(path.parents):
            if parent not in made:
                argv += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        argv += ["--ro-bind", str(path), str(path)]
        covered.append(path)
        made.add(path)
    return argv


def _outermost(directories: list[str]) -> list[str]:
    """Drop directories nested inside others in the list, so each tree is bound once."""
    paths = sorted({Path(d).resolve() for d in directories if d and os.path.isdir(d)}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in paths:
        if not any(k == path or k in path.parents for k in kept):
            kept.append(path)
    return [str(p) for p in kept]
