"""Limits hold for the sandbox as a whole, not per process.

With RLIMIT_AS alone (issue 12, reproduced before cgroups), four processes of 200 MB, or
800 MB of SysV shared memory attached, touched and detached, passed a 256 MB limit. Each
attack below is run twice: at a small size, where it must pass (so the program itself is
right), and at a size over the limit, where it must not.
"""

from __future__ import annotations

import platform

import pytest

from harness.eval.sandbox import seccomp
from harness.eval.sandbox.runner import Job
from tests.eval.conftest import sandbox_for
from tests.eval.sandbox.test_sandbox_neighbours import isolated_name

LIMIT_MB = 256

PROCESSES = """
import os
def attack():
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            block = bytearray({mb} << 20)
            block[::4096] = b"x" * len(block[::4096])
            os._exit(0)
        children.append(pid)
    return all(os.waitpid(pid, 0)[1] == 0 for pid in children)
"""
SYSV_SHM = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
def attack():
    for _ in range(8):
        segment = libc.shmget(0, {mb} << 20, 0o1600)
        if segment < 0:
            raise OSError(ctypes.get_errno(), "shmget")
        address = libc.shmat(segment, None, 0)
        ctypes.memset(address, 1, {mb} << 20)
        libc.shmdt(ctypes.c_void_p(address))
    return True
"""
MEMFD = """
import os
def attack():
    fds = [os.memfd_create("x") for _ in range(8)]
    for fd in fds:
        os.write(fd, b"x" * ({mb} << 20))
    return True
"""
DEV_SHM = """
def attack():
    for i in range({mb} // 10):  # files of 10 MB: RLIMIT_FSIZE stops single files at 16 MB
        with open(f"/dev/shm/fill{{i}}", "wb") as f:
            f.write(b"x" * (10 << 20))
    return True
"""
NESTED_USERNS_TMPFS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def attack():
    if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare")
    os.makedirs("/tmp/mine", exist_ok=True)
    if libc.mount(b"tmpfs", b"/tmp/mine", b"tmpfs", 0, b"size=2g") != 0:
        raise OSError(ctypes.get_errno(), "mount")
    for i in range({mb} // 10):
        with open(f"/tmp/mine/fill{{i}}", "wb") as f:
            f.write(b"x" * (10 << 20))
    return True
"""
EMPTY_FILES = """
def attack():
    for i in range({mb} * 1000):  # ~1.2 KB of kernel memory each, 0 bytes of tmpfs
        open(f"/tmp/f{{i}}", "w").close()
    return True
"""
ATTACKS = {"processes": PROCESSES, "sysv_shm": SYSV_SHM, "memfd": MEMFD, "dev_shm": DEV_SHM,
           "nested_userns_tmpfs": NESTED_USERNS_TMPFS, "empty_files": EMPTY_FILES}  # fmt: skip
SMALL_MB = {"processes": 10, "sysv_shm": 4, "memfd": 4, "dev_shm": 20, "nested_userns_tmpfs": 20, "empty_files": 1}
BIG_MB = {"processes": 200, "sysv_shm": 100, "memfd": 100, "dev_shm": 800, "nested_userns_tmpfs": 800,
          "empty_files": 400}  # fmt: skip
# Calls the attack denies outright, so that even its small size fails (see seccomp.py).
DENIED = {"sysv_shm", "memfd", "nested_userns_tmpfs"}


@pytest.fixture(scope="module")
def limited(isolated):
    box = sandbox_for(isolated_name(isolated), memory_mb=LIMIT_MB, timeout_s=20)
    yield box
    box.close()


def denied(reason: str) -> bool:
    return "PermissionError" in reason and "raised by the program" in reason


def attack(box, name: str, mb: int):
    return box.run(Job(program=ATTACKS[name].format(mb=mb), tests="assert attack() is True\n"))


@pytest.mark.parametrize("name", list(ATTACKS))
def test_memory_over_the_limit_is_refused_for_the_whole_sandbox(limited, name):
    if name == "processes" and limited.hierarchy is None:
        small = attack(limited, name, SMALL_MB[name])
        assert small.status == "failed" and denied(small.reason), small.reason  # fork denied
    elif name == "empty_files" and limited.hierarchy is None and limited.kind == "bwrap":
        pytest.skip("without a cgroup, kernel memory for files in bwrap's tmpfs is bounded only by the time "
                    "limit (README, Guarantees; `sandbox_memory` says so in every summary)")  # fmt: skip
    small = attack(limited, name, SMALL_MB[name])
    if name in DENIED:
        assert small.status == "failed" and denied(small.reason), small.reason
    elif not (name == "processes" and limited.hierarchy is None):
        assert small.status == "passed", small.reason
    big = attack(limited, name, BIG_MB[name])
    assert big.status == "failed", big.reason
    if limited.hierarchy is not None and name == "processes":
        assert "memory limit of 256 MB (whole sandbox)" in big.reason
    if name == "empty_files":  # the cgroup's limit, or the inode cap of unshare's own tmpfs
        assert "memory limit of 256 MB (whole sandbox)" in big.reason or "No space left" in big.reason


def test_setsid_and_namespaces_are_denied(isolated):
    program = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def tries():\n"
        "    out = {}\n"
        "    try:\n        os.setsid()\n        out['setsid'] = 'allowed'\n    except OSError as e:\n        out['setsid'] = e.errno\n"
        "    for name, flag in (('user', 0x10000000), ('mount', 0x00020000), ('net', 0x40000000)):\n"
        "        out[name] = 'allowed' if libc.unshare(flag) == 0 else ctypes.get_errno()\n"
        "    return out\n"
    )
    outcome = isolated.run(Job(program=program, tests="assert tries() == {'setsid': 1, 'user': 1, 'mount': 1, 'net': 1}\n"))
    assert outcome.status == "passed", outcome.reason


def test_kernel_surfaces_are_denied(isolated):
    """The rest of the filter's list, called by number from inside: each answers EPERM."""
    machine = platform.machine()
    if machine not in seccomp.ARCHES:
        pytest.skip(f"no seccomp filter on {machine}")
    numbers = seccomp.ARCHES[machine][1]
    names = ["mount", "umount2", "pivot_root", "ptrace", "keyctl", "bpf", "perf_event_open", "userfaultfd",
             "io_uring_setup", "init_module", "kexec_load", "setns"]  # fmt: skip
    wanted = {name: numbers[name] for name in names}
    program = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"NUMBERS = {wanted!r}\n"
        "def errnos():\n"
        "    out = {}\n"
        "    for name, nr in NUMBERS.items():\n"
        "        ctypes.set_errno(0)\n"
        "        out[name] = ctypes.get_errno() if libc.syscall(nr, 0, 0, 0, 0, 0) == -1 else 'allowed'\n"
        "    return out\n"
    )
    outcome = isolated.run(Job(program=program, tests=f"assert errnos() == {dict.fromkeys(names, 1)!r}\n"))
    assert outcome.status == "passed", outcome.reason
