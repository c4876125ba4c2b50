"""Feeding sandbox and checker processes their stdin and reading their output, under one deadline.

`subprocess.communicate` keeps all output in memory and serves one process. This pump serves
several pipes at once, keeps only the last `cap` bytes of each output (a program that floods
stderr costs the harness nothing but the reading), and stops at a deadline or once the
pipes it waits for are closed.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time


class Pump:
    """Writes payloads to input pipes and keeps capped tails of output pipes."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.pending: dict[int, memoryview] = {}
        self.tails: dict[int, bytearray] = {}
        self.caps: dict[int, int] = {}
        self.open: set[int] = set()
        self.streams: list = []

    def feed(self, stream, payload: bytes) -> None:
        fd = stream.fileno()
        os.set_blocking(fd, False)
        self.pending[fd] = memoryview(payload)
        self.streams.append(stream)
        self.selector.register(fd, selectors.EVENT_WRITE, stream)

    def collect(self, stream, cap: int) -> None:
        fd = stream.fileno()
        os.set_blocking(fd, False)
        self.tails[fd], self.caps[fd] = bytearray(), cap
        self.open.add(fd)
        self.streams.append(stream)
        self.selector.register(fd, selectors.EVENT_READ, stream)

    def tail(self, stream) -> bytes:
        return bytes(self.tails[stream.fileno()])

    def run_until_closed(self, streams, deadline: float) -> bool:
        """Pump until every stream in `streams` is closed (True) or the deadline (False)."""
        waited = {s.fileno() for s in streams}
        while waited & self.open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for key, _ in self.selector.select(remaining):
                if key.fd in self.pending:
                    self._write_some(key)
                else:
                    self._read_some(key.fd)
        return True

    def close(self) -> None:
        self.selector.close()
        for stream in self.streams:
            if not stream.closed:
                stream.close()

    def _read_some(self, fd: int) -> None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.selector.unregister(fd)
            self.open.discard(fd)
            return
        buffer = self.tails[fd]
        buffer += chunk
        if len(buffer) > self.caps[fd]:
            del buffer[: len(buffer) - self.caps[fd]]

    def _write_some(self, key) -> None:
        pending = self.pending[key.fd]
        try:
            pending = pending[os.write(key.fd, pending[: 1 << 16]) :]
        except BlockingIOError:
            return
        except (BrokenPipeError, ConnectionResetError):
            pending = pending[:0]  # the reader is gone; it will fail on its own
        self.pending[key.fd] = pending
        if not pending:
            self.selector.unregister(key.fd)
            del self.pending[key.fd]
            key.data.close()


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process group; namespaces take the rest (bwrap --die-with-parent, unshare
    --kill-child: when the sandbox's init dies the kernel kills every process in its pid
    namespace, including ones that left the group). The cgroup, where there is one, is
    emptied by the caller as well."""
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass


def has_exited(proc: subprocess.Popen) -> bool:
    """Exited on its own (checked without reaping it: `wait` still gets its status)."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def wait_for_exit(proc: subprocess.Popen, deadline: float) -> None:
    while not has_exited(proc) and time.monotonic() < deadline:
        time.sleep(0.005)


def scrubbed_env(workdir: str) -> dict[str, str]:
    """Nothing from the caller's environment (tokens, keys, proxies) reaches the program."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",  # set iteration order, and so some outputs, repeatable
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONSAFEPATH": "1",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",  # BLAS thread pools count against the pids limit
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
