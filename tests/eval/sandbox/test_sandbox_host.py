"""Counters the whole host shares: what a sandboxed program may hold of them while it runs.

Each attack takes a kernel resource that per-process limits do not bound (or that only a
cgroup bounds), holds it for HOLD_S seconds and sets RESULT to what it got; meanwhile the
test samples the host's own counter, before, during and after. Before issue 24 an
`io_setup(65536)` took all of `fs.aio-max-nr`, 25 loopback TCP connections queued 262 MB of
host `tcp_mem` past a 256 MB limit, and SysV semaphores held 2.5 GB of kernel memory as an
ordinary user. `pytest -s` (or `-rP`) prints the figures.
"""

from __future__ import annotations

import platform
import threading
import time
from pathlib import Path

import pytest

from harness.eval.sandbox import seccomp
from harness.eval.sandbox import runner
from harness.eval.sandbox.runner import Job

HOLD_S = 1.5
EPERM = 1


def meminfo_kb(field: str):
    def read() -> int:
        line = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith(field + ":"))
        return int(line.split()[1])

    return read


def memory_in_use_kb() -> int:
    return meminfo_kb("MemTotal")() - meminfo_kb("MemAvailable")()


def tcp_pages() -> int:
    """Host-wide TCP buffer memory in pages (the `mem` of /proc/net/sockstat counts every namespace)."""
    fields = next(ln for ln in Path("/proc/net/sockstat").read_text().splitlines() if ln.startswith("TCP:")).split()
    return int(fields[fields.index("mem") + 1])


def sysctl(path: str):
    return lambda: int(Path(path).read_text().split()[0])


def signals_queued_by_this_user() -> int:
    """SigQ: signals queued by the test's own user, its child user namespaces included."""
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("SigQ:"))
    return int(line.split()[1].split("/")[0])


def held(box, name: str, program: str, tests: str, counter) -> tuple[str, int, int, int]:
    """Run `program` (which sets RESULT, then holds what it took for HOLD_S) with `tests`
    reading `result()`; ("status: reason", counter before, peak during, after)."""
    source = program + f"\nimport time\ntime.sleep({HOLD_S})\ndef result():\n    return RESULT\n"
    before = peak = counter()
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, counter())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        outcome = box.run(Job(program=source, tests=tests))
    finally:
        done.set()
        sampler.join()
    after = counter()
    verdict = f"{outcome.status}: {outcome.reason}" if outcome.reason else outcome.status
    print(f"\n{name} ({box.kind}, cgroup {'yes' if box.hierarchy else 'no'}): host counter before {before}, "
          f"during {peak}, after {after}; {verdict}")  # fmt: skip
    return verdict, before, peak, after


# From the kernel's unistd headers, apart from seccomp.py's own table, which this checks.
SYSCALLS = {"x86_64": {"io_setup": 206, "mq_open": 240, "inotify_init1": 294, "fanotify_init": 300},
            "aarch64": {"io_setup": 0, "mq_open": 180, "inotify_init1": 26, "fanotify_init": 262}}  # fmt: skip


def syscall_numbers() -> dict[str, int]:
    machine = platform.machine()
    if machine not in seccomp.ARCHES:
        pytest.skip(f"no seccomp filter on {machine}")
    return SYSCALLS[machine]


def test_aio_contexts_are_denied(isolated):
    """`fs.aio-nr` counts every process's AIO events against the host's `fs.aio-max-nr`."""
    program = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\ncontext = ctypes.c_ulong(0)\n"
        f"got = libc.syscall({syscall_numbers()['io_setup']}, 65536, ctypes.byref(context))\n"
        "RESULT = 0 if got == 0 else ctypes.get_errno()\n"
    )
    verdict, before, peak, after = held(isolated, "aio", program, f"assert result() == {EPERM}\n",
                                        sysctl("/proc/sys/fs/aio-nr"))  # fmt: skip
    assert verdict == "passed"
    assert peak - before < 1024  # other processes on the host may use a little; the program took none


def test_sysv_semaphores_and_message_queues_are_denied(isolated):
    """Semaphore arrays (2 MB each at 32000 semaphores) are unreclaimable kernel memory that
    only a memory cgroup charges; message queues and POSIX queues likewise."""
    numbers = syscall_numbers()
    program = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def tries(call):\n    ctypes.set_errno(0)\n    return 'allowed' if call() >= 0 else ctypes.get_errno()\n"
        "made = 0\nfor _ in range(100):\n    if libc.semget(0, 32000, 0o600) < 0:\n        break\n    made += 1\n"
        "RESULT = {'semget': tries(lambda: libc.semget(0, 1, 0o600)), 'arrays': made,\n"
        "          'msgget': tries(lambda: libc.msgget(0, 0o600)),\n"
        f"          'mq_open': tries(lambda: libc.syscall({numbers['mq_open']}, b'mtpq', 0o102, 0o600, None))}}\n"
    )
    expected = {"semget": EPERM, "arrays": 0, "msgget": EPERM, "mq_open": EPERM}
    verdict, before, peak, after = held(isolated, "sysv ipc", program, f"assert result() == {expected!r}\n",
                                        meminfo_kb("SUnreclaim"))  # fmt: skip
    assert verdict == "passed"
    assert peak - before < 64 << 10  # kB: the host's own churn, never the program's 200 MB


def test_inet_sockets_are_denied(isolated):
    """TCP buffers in the sandbox's own network namespace are the host's `tcp_mem`."""
    program = (
        "import socket\nqueued, error, pairs = 0, None, []\n"
        "try:\n    listener = socket.socket()\n    listener.bind(('127.0.0.1', 0))\n    listener.listen(32)\n"
        "    for _ in range(25):\n        client = socket.create_connection(listener.getsockname())\n"
        "        server, _ = listener.accept()\n        client.setblocking(False)\n        pairs.append((client, server))\n"
        "        while True:\n            try:\n                queued += client.send(b'x' * 65536)\n"
        "            except BlockingIOError:\n                break\n"
        "except OSError as exc:\n    error = exc.errno\n"
        "RESULT = [error, queued]\n"
    )
    verdict, before, peak, after = held(isolated, "tcp", program, f"assert result() == [{EPERM}, 0]\n", tcp_pages)
    assert verdict == "passed"
    assert peak - before < 1024  # pages: the host's own traffic, never the program's 262 MB


def test_unix_socket_buffers_stay_at_the_default(isolated):
    """AF_UNIX stays (multiprocessing, asyncio); its queues are bounded by the send buffer,
    which the program may not raise to `net.core.wmem_max` (4 MB here)."""
    default = int(Path("/proc/sys/net/core/wmem_default").read_text())
    program = (
        "import socket\nqueued, error, pairs = 0, None, []\n"
        "for _ in range(26):\n    a, b = socket.socketpair()\n"
        "    try:\n        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)\n"
        "    except OSError as exc:\n        error = exc.errno\n"
        "    a.setblocking(False)\n    pairs.append((a, b))\n"
        "    while True:\n        try:\n            queued += a.send(b'x' * 65536)\n        except BlockingIOError:\n"
        "            break\n"
        "import asyncio, multiprocessing\nasync def answer():\n    return 42\n"
        "left, right = multiprocessing.Pipe()  # a socketpair, as asyncio's own wake-up channel\n"
        "left.send([1, 2])\nworks = [asyncio.run(answer()), right.recv()]\n"
        "RESULT = [error, queued, works]\n"
    )
    tests = (f"error, queued, works = result()\nassert works == [42, [1, 2]]\nassert error == {EPERM}\n"
             f"assert queued <= 26 * 2 * {default}\n")  # fmt: skip
    verdict, *_ = held(isolated, "unix sockets", program, tests, memory_in_use_kb)  # noisy: the host's own churn
    assert verdict == "passed"


def test_pipe_buffers_stay_at_the_default(isolated):
    """A pipe holds 64 KB unless F_SETPIPE_SZ raises it to `fs.pipe-max-size` (1 MB here):
    memory only a cgroup charges, from a per-user quota (`fs.pipe-user-pages-soft`)."""
    program = (
        "import fcntl, os\nqueued, error, pipes = 0, None, []\n"
        "for _ in range(28):\n    read, write = os.pipe()\n    pipes.append((read, write))\n"
        "    try:\n        fcntl.fcntl(write, 1031, 1 << 20)  # F_SETPIPE_SZ\n    except OSError as exc:\n"
        "        error = exc.errno\n    os.set_blocking(write, False)\n"
        "    while True:\n        try:\n            queued += os.write(write, b'x' * 65536)\n"
        "        except BlockingIOError:\n            break\n"
        "RESULT = [error, queued]\n"
    )
    tests = f"error, queued = result()\nassert error == {EPERM}\nassert queued <= 28 * 65536\n"
    verdict, *_ = held(isolated, "pipes", program, tests, memory_in_use_kb)  # noisy: the host's own churn
    assert verdict == "passed"


def test_ptys_are_unavailable(isolated):
    """`kernel.pty.nr` counts ptys of every devpts instance against `kernel.pty.max`."""
    program = (
        "import os\nfds, error = [], None\nfor _ in range(20):\n    try:\n        fds += os.openpty()\n"
        "    except OSError as exc:\n        error = exc.errno\n        break\n"
        "RESULT = len(fds) // 2\n"
    )
    verdict, before, peak, after = held(isolated, "ptys", program, "assert result() == 0\n",
                                        sysctl("/proc/sys/kernel/pty/nr"))  # fmt: skip
    assert verdict == "passed"
    assert peak - before <= 2  # a terminal opened elsewhere on the host meanwhile


def test_inotify_and_fanotify_are_denied(isolated):
    """Instances and watches are counted per user (128 and ~190k here), ~1 KB of kernel memory a watch."""
    numbers = syscall_numbers()
    program = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def tries(nr, *args):\n    ctypes.set_errno(0)\n    return 'allowed' if libc.syscall(nr, *args) >= 0 else ctypes.get_errno()\n"
        f"RESULT = [tries({numbers['inotify_init1']}, 0), tries({numbers['fanotify_init']}, 0, 0)]\n"
    )
    verdict, *_ = held(isolated, "inotify", program, f"assert result() == [{EPERM}, {EPERM}]\n", lambda: 0)
    assert verdict == "passed"


def test_queued_signals_and_timers_are_capped(isolated):
    """Queued real-time signals and POSIX timers (each holds a queued signal) are counted per
    user: as an ordinary user the program shared the user's own quota (96k here, ~36 MB)."""
    program = (
        "import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})\n"
        "class Event(ctypes.Structure):\n"
        "    _fields_ = [('value', ctypes.c_void_p), ('signo', ctypes.c_int), ('notify', ctypes.c_int),\n"
        "                ('pad', ctypes.c_char * 48)]\n"
        "event, timer, timers, queued = Event(None, 0, 1, b''), ctypes.c_void_p(), 0, 0  # SIGEV_NONE\n"
        "while timers < 5000 and libc.timer_create(1, ctypes.byref(event), ctypes.byref(timer)) == 0:\n"
        "    timers += 1\n"
        "while queued < 5000 and libc.sigqueue(os.getpid(), signal.SIGRTMIN, None) == 0:\n    queued += 1\n"
        "RESULT = timers + queued\n"
    )
    verdict, before, peak, after = held(isolated, "signals and timers", program,
                                        f"assert result() <= {runner.QUEUED_SIGNALS}\n", signals_queued_by_this_user)  # fmt: skip
    assert verdict == "passed"
    assert peak - before <= runner.QUEUED_SIGNALS
