"""One cgroup per sandboxed program: a memory limit for the whole sandbox, a pids limit, a CPU share.

The memory controller charges everything a program's processes make the kernel hold: their
pages, tmpfs and /dev/shm files, SysV shm, and kernel memory such as the inodes of a
hundred thousand empty files, so `memory_mb` bounds the sandbox as a whole. `pids.max`
bounds its tasks (threads included), and each program's cgroup has the default CPU weight,
so programs share the CPUs equally however many processes each one forks.

cgroup v2 (one hierarchy) is used where it has the memory and pids controllers; else the
v1 `memory` and `pids` hierarchies (and `cpu` if mounted), as on this project's development
machine. The harness creates `mtp-harness-<pid>-<n>/` under its own cgroup in each, and one
child per program (`p<n>`). It needs write access there: root, or a delegated v2 subtree
(`systemd-run --user --scope -p Delegate=yes harness ...`). In v2 a cgroup holding processes
cannot also hold controller-enabled children, so when the harness is the only process in its
delegated cgroup it first moves itself into a leaf (`mtp-harness-<pid>-self`), the usual
pattern for delegated subtrees. Anywhere else `discover` says why not, and the sandbox runs
without (`sandbox.py` then forbids processes; README, "Guarantees").
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

V1_CONTROLLERS = ("memory", "pids", "cpu")
# The launcher's trampoline: the shell writes its own pid into each cgroup.procs file named
# before `--`, then execs the command, so nothing of the command runs outside the cgroup.
JOIN_CGROUP = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
PREFIX = "mtp-harness-"
_counter = itertools.count()


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup file system."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        fstype, _, options = right.split(" ", 2)
        if fstype in ("cgroup", "cgroup2"):
            point = left.split(" ")[4].encode().decode("unicode_escape")
            found.append((point, fstype, set(options.strip().split(","))))
    return found


@dataclass
class Hierarchy:
    """Where program cgroups are made: one directory per distinct hierarchy, and its version."""

    version: int
    parents: dict[str, Path]  # controller -> the harness's directory (v2: "" -> one directory)

    def create(self, memory_bytes: int, pids: int, name: str | None = None) -> Box:
        name = name or f"p{next(_counter)}"
        dirs = {controller: parent / name for controller, parent in self.parents.items()}
        box = Box(self.version, dirs)
        try:
            for directory in dict.fromkeys(dirs.values()):
                directory.mkdir()
            box.set_limits(memory_bytes, pids)
        except OSError:
            box.remove()
            raise
        return box

    def weigh(self, programs: int) -> None:
        """The harness's CPU weight: that of `programs` sessions, so that programs in their
        cgroups get, together, what as many sessions (autogroups) would get without."""
        if self.version == 2:
            _write(self.parents[""] / "cpu.weight", min(10_000, 100 * programs), optional=True)
        elif "cpu" in self.parents:
            _write(self.parents["cpu"] / "cpu.shares", 1024 * programs, optional=True)

    def remove(self) -> None:
        for parent in dict.fromkeys(self.parents.values()):
            _rmdir(parent)


@dataclass
class Box:
    """One program's cgroup (one directory per v1 hierarchy)."""

    version: int
    dirs: dict[str, Path]

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid into to join (the launcher's trampoline)."""
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        if self.version == 2:
            directory = self.dirs[""]
            _write(directory / "memory.max", memory_bytes)
            _write(directory / "memory.swap.max", 0, optional=True)
            _write(directory / "pids.max", pids)
            return
        _write(self.dirs["memory"] / "memory.limit_in_bytes", memory_bytes)
        _write(self.dirs["memory"] / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)  # no swap
        _write(self.dirs["pids"] / "pids.max", pids)

    def oom_kills(self) -> int:
        """How many of its processes the kernel killed at the memory limit."""
        directory = self.dirs[""] if self.version == 2 else self.dirs["memory"]
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (directory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def kill(self, patience_s: float = 2.0) -> None:
        """SIGKILL every process in it (cgroup.kill where the kernel has it)."""
        directory = next(iter(self.dirs.values()))
        if self.version == 2 and (directory / "cgroup.kill").exists():
            _write(directory / "cgroup.kill", 1, optional=True)
        deadline, pause = time.monotonic() + patience_s, 0.0005
        while time.monotonic() < deadline:
            pids = _pids(directory)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(pause)
            pause = min(2 * pause, 0.02)

    def remove(self) -> None:
        for directory in dict.fromkeys(self.dirs.values()):
            _rmdir(directory)


def _pids(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _write(path: Path, value, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise


def _rmdir(directory: Path, patience_s: float = 1.0) -> None:
    """rmdir, waiting briefly for exiting processes to leave (EBUSY until they are reaped)."""
    deadline, pause = time.monotonic() + patience_s, 0.0005
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(pause)
            pause = min(2 * pause, 0.02)


def discover(wanted: tuple[str, ...] = ("memory", "pids")) -> tuple[Hierarchy | None, str]:
    """The hierarchy the harness may create program cgroups in, else (None, why not)."""
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as exc:
        return None, f"cannot read /proc/self: {exc}"
    v2 = next((point for point, fstype, _ in mounts if fstype == "cgroup2"), None)
    if v2 and "" in own:
        available = _read_words(Path(v2 + own[""]) / "cgroup.controllers")
        if set(wanted) <= available:
            return _make_v2(Path(v2 + own[""]), available)
    parents = {}
    for controller in (*wanted, "cpu"):
        point = next((p for p, fstype, options in mounts if fstype == "cgroup" and controller in options), None)
        if point is None or controller not in own:
            if controller in wanted:
                return None, f"no cgroup v1 or v2 hierarchy has the {controller} controller"
            continue
        parents[controller] = Path(point + own[controller])
    return _make_v1(parents)


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _harness_dir() -> str:
    return f"{PREFIX}{os.getpid()}-{next(_counter)}"


def _make_v1(parents: dict[str, Path]) -> tuple[Hierarchy | None, str]:
    made: dict[str, Path] = {}
    name = _harness_dir()
    for controller, parent in parents.items():
        _remove_stale(parent)
        try:
            (parent / name).mkdir(exist_ok=True)
        except OSError as exc:
            if controller == "cpu":
                continue  # equal CPU share then rests on the per-session grouping alone
            Hierarchy(1, made).remove()
            return None, f"cgroup v1 {parent} is not writable here ({exc.strerror}): not root, and not delegated"
        made[controller] = parent / name
    return Hierarchy(1, made), ""


def _make_v2(own: Path, available: set[str]) -> tuple[Hierarchy | None, str]:
    _remove_stale(own)
    enable = " ".join(f"+{c}" for c in ("memory", "pids", "cpu") if c in available)
    try:
        try:
            (own / "cgroup.subtree_control").write_text(enable)
        except OSError:
            # Processes here: v2 forbids controller-enabled children beside them. Only when
            # the harness is alone in its (delegated) cgroup may it step into a leaf.
            if _pids(own) != [os.getpid()]:
                raise
            leaf = own / f"{PREFIX}{os.getpid()}-self"
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            (own / "cgroup.subtree_control").write_text(enable)
        parent = own / _harness_dir()
        parent.mkdir()
        (parent / "cgroup.subtree_control").write_text(enable)
    except OSError as exc:
        return None, f"cgroup v2 {own} is not delegated to this user ({exc.strerror})"
    return Hierarchy(2, {"": parent}), ""


def _remove_stale(parent: Path) -> None:
    """Empty harness directories left by a harness process that no longer exists."""
    try:
        entries = list(parent.glob(PREFIX + "*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for child in [c for c in entry.iterdir() if c.is_dir()]:  # programs' p<n> and `checkers`
                _rmdir(child, patience_s=0)
            _rmdir(entry, patience_s=0)
