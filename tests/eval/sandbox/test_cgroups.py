"""Program cgroups: this machine's real hierarchy where the tests may write it, and v2's steps
on a directory tree shaped like one (the development machine mounts v1 only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.eval.sandbox import cgroups
from harness.eval.sandbox.cgroups import JOIN_CGROUP


@pytest.fixture
def hierarchy():
    found, why = cgroups.discover()
    if found is None:
        pytest.skip(f"no cgroup can be made here ({why}); the sandbox tests cover that path")
    yield found
    found.remove()


def test_a_program_cgroup_limits_memory_and_tasks_and_reports_oom(hierarchy):
    box = hierarchy.create(64 << 20, 16)
    try:
        hog = "b = bytearray(256 << 20)\nb[::4096] = b'x' * len(b[::4096])\n"
        argv = ["/bin/sh", "-c", JOIN_CGROUP, "join", *box.procs_files, "--", sys.executable, "-c", hog]
        result = subprocess.run(argv, capture_output=True)
        assert result.returncode == -9 and box.oom_kills() >= 1  # the kernel's OOM killer, in this cgroup only
        many = "import threading, time\n[threading.Thread(target=time.sleep, args=(2,)).start() for _ in range(40)]"
        result = subprocess.run(["/bin/sh", "-c", JOIN_CGROUP, "join", *box.procs_files, "--", sys.executable, "-c", many],
                                capture_output=True, text=True)  # fmt: skip
        assert "can't start new thread" in result.stderr  # pids.max counts threads
    finally:
        box.kill()
        box.remove()
    assert not any(Path(f).parent.exists() for f in box.procs_files)


def test_joining_happens_before_the_command_runs(hierarchy):
    box = hierarchy.create(64 << 20, 16)
    try:
        argv = ["/bin/sh", "-c", JOIN_CGROUP, "join", *box.procs_files, "--", "cat", "/proc/self/cgroup"]
        seen = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert all(f"/{Path(f).parent.name}\n" in seen or f"/{Path(f).parent.name}" in seen for f in box.procs_files)
    finally:
        box.kill()
        box.remove()


def fake_v2(root: Path, procs: str) -> Path:
    own = root / "own"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.procs").write_text(procs)
    (own / "cgroup.subtree_control").write_text("")
    return own


def test_v2_enables_controllers_and_writes_limits(tmp_path):
    own = fake_v2(tmp_path, "")
    made, why = cgroups._make_v2(own, {"cpu", "memory", "pids"})
    assert made is not None and made.version == 2, why
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    box = made.create(256 << 20, 32)
    assert (box.dirs[""] / "memory.max").read_text() == str(256 << 20)
    assert (box.dirs[""] / "pids.max").read_text() == "32"
    assert (box.dirs[""] / "memory.swap.max").read_text() == "0"
    (box.dirs[""] / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert box.oom_kills() == 1 and box.procs_files == [str(box.dirs[""] / "cgroup.procs")]
    made.weigh(4)
    assert (made.parents[""] / "cpu.weight").read_text() == "400"


def test_v2_with_other_processes_in_the_cgroup_is_not_delegated(tmp_path):
    own = fake_v2(tmp_path, f"{os.getpid()}\n1\n")
    (own / "cgroup.subtree_control").unlink()
    (own / "cgroup.subtree_control").mkdir()  # writing it fails, as EBUSY would
    made, why = cgroups._make_v2(own, {"memory", "pids"})
    assert made is None and "not delegated" in why
    assert not (own / f"{cgroups.PREFIX}{os.getpid()}-self").exists()  # it did not move itself


def test_stale_harness_directories_are_removed(tmp_path):
    dead = tmp_path / f"{cgroups.PREFIX}999999999-0"
    (dead / "p3").mkdir(parents=True)
    alive = tmp_path / f"{cgroups.PREFIX}{os.getpid()}-0"
    alive.mkdir()
    cgroups._remove_stale(tmp_path)
    assert not dead.exists() and alive.exists()
