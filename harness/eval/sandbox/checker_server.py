"""The harness's side of the checker fork-server (`checker.py`, `checker_fork.py`): start it, hand it jobs.

One server per sandbox, started on first use with the harness's own interpreter, in the
sandbox's checkers cgroup when there is one (`join`: the cgroup.procs files it enters
before the interpreter starts). A job is a stream socket (spec in; the watcher's pid and the
verdict out) and the checker's end of the program's channel, both passed over a SEQPACKET
socket as file descriptors. If the server has died it is started again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from harness.eval.sandbox.cgroups import JOIN_CGROUP
from harness.eval.sandbox.streams import scrubbed_env


def source() -> str:
    here = Path(__file__).parent
    return "\n".join((here / name).read_text() for name in ("wire.py", "checker.py", "checker_fork.py"))


class CheckerServer:
    def __init__(self, join: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._source = source()
        self._join = list(join)

    def submit(self, job_fd: int, channel_fd: int) -> None:
        """Hand one job to the server (restarting it once if it has gone)."""
        with self._lock:
            for attempt in (1, 2):
                if self._proc is None or self._proc.poll() is not None:
                    self._start()
                try:
                    socket.send_fds(self._control, [b"job"], [job_fd, channel_fd])
                    return
                except OSError:
                    if attempt == 2:
                        raise
                    self._stop()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-I", "-S", "-c", self._source, str(theirs.fileno())]
        if self._join:
            argv = ["/bin/sh", "-c", JOIN_CGROUP, "mtp-cgroup-join", *self._join, "--", *argv]
        try:
            self._proc = subprocess.Popen(
                argv, pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                env=scrubbed_env("/"), start_new_session=True,
            )  # fmt: skip
        finally:
            theirs.close()
        self._control = ours

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()  # the server reads the end of the stream and exits
            self._control = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._stop()


def kill_checker(pid: int) -> None:
    """SIGKILL a checker the caller knows is alive (its job stream is still open, and only
    it holds that stream's other end), through a pidfd so that a reused pid is never hit."""
    import signal

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)
