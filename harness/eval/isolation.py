"""How a sandboxed program is launched: the bubblewrap, unshare and unisolated command lines.

Three kinds, strongest first:

- `bwrap`: bubblewrap with new pid, net, ipc, uts and cgroup namespaces, a read-only view of
  the system directories and the interpreter's prefixes only (no /etc, and nothing else of
  /home, /root or the project), a private size-capped tmpfs as the working directory,
  `--die-with-parent` and `--new-session`. As an ordinary user this is `--unshare-all` (a
  user namespace too). As root it is the same set minus the user namespace: a user namespace
  would map the sandbox to host uid 0, where RLIMIT_NPROC is not enforced (the kernel
  exempts uid 0), so a fork bomb would go unchecked; instead the bootstrap starts with only
  CAP_SETUID/CAP_SETGID and drops to an unprivileged uid before any untrusted code runs.
- `unshare`: the fallback when bwrap is missing: util-linux `unshare` with new net, pid,
  mount, ipc and uts namespaces (a user namespace when not root), so there is still no
  network and the whole process tree dies with the namespace; the working directory is a
  private host temp dir, but the host file system stays visible (read access as the
  unprivileged uid).
- `none`: no isolation, rlimits only. Used only when the user asks for it by name.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

# Directories a Python interpreter needs from the host; symlinks (merged /usr) are recreated.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SANDBOX_WORKDIR = "/tmp"
KINDS = ("bwrap", "unshare", "none")


@dataclass(frozen=True)
class Launch:
    """One launch recipe: the argv prefix, the working directory and who runs the program."""

    kind: str
    prefix: tuple[str, ...]
    host_workdir: bool  # True: the caller creates a private temp dir on the host as cwd
    drop_to_uid: int | None  # the bootstrap switches to this uid before the program runs


def available_kinds() -> list[str]:
    """Isolation kinds whose tool is installed, strongest first (not yet probed)."""
    kinds = [k for k, tool in (("bwrap", "bwrap"), ("unshare", "unshare")) if shutil.which(tool)]
    return kinds + ["none"]


def launch_for(kind: str, python_dirs: list[str], *, uid: int, tmpfs_mb: int, drop: bool = True) -> Launch:
    """The command prefix that runs `python -c BOOTSTRAP` under the given isolation kind.
    As root the program switches to `uid` unless `drop` is False (only for kind `none`)."""
    root = os.geteuid() == 0
    drop = uid if root and (drop or kind != "none") else None
    if kind == "bwrap":
        return Launch("bwrap", tuple(bwrap_prefix(python_dirs, root=root, tmpfs_mb=tmpfs_mb)), False, drop)
    if kind == "unshare":
        namespaces = ["--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts"]
        user = [] if root else ["--user", "--map-root-user"]
        return Launch("unshare", ("unshare", *user, *namespaces), True, drop)
    if kind == "none":
        return Launch("none", (), True, drop)
    raise ValueError(f"unknown sandbox kind {kind!r}")


def bwrap_prefix(python_dirs: list[str], *, root: bool, tmpfs_mb: int) -> list[str]:
    if root:
        # --unshare-all minus the user namespace (see the module docstring), and only the two
        # capabilities the bootstrap needs to switch to the unprivileged uid.
        argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv = ["bwrap", "--unshare-all"]
    argv += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(tmpfs_mb << 20), "--perms", "1777", "--tmpfs", SANDBOX_WORKDIR]
    # After the tmpfs: bwrap applies its operations in order, so an interpreter that lives
    # under /tmp (a project cloned into /tmp, pytest's tmp dirs) is bound on top of the
    # private /tmp instead of being hidden by it.
    argv += _interpreter_binds(python_dirs)
    argv += ["--chdir", SANDBOX_WORKDIR]
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
