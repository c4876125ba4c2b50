"""Feeding a sandboxed process its stdin and reading its output under a deadline and a size cap.

`subprocess.communicate` keeps all output in memory and stops waiting only by raising, so a
program that prints in a loop could fill the host's memory before its timeout. This loop
keeps only the last `cap` bytes of each stream and kills the process tree at the deadline.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

GRACE_S = 2.0  # after a kill, how long to wait for the pipes to close


@dataclass
class Finished:
    returncode: int
    stdout: bytes  # tail, at most cap bytes
    stderr: bytes
    timed_out: bool
    seconds: float


def communicate(proc: subprocess.Popen, payload: bytes, timeout: float, cap: int) -> Finished:
    """Write payload to stdin, collect stdout/stderr tails; kill the tree at the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    tails = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    pending = memoryview(payload)
    with selectors.DefaultSelector() as selector:
        for stream in tails:
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, selectors.EVENT_READ)
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE)
        timed_out = _pump(selector, proc, tails, pending, deadline, cap)
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True  # closed its output but kept running
        if timed_out:
            kill_tree(proc)
            _pump(selector, proc, tails, memoryview(b""), time.monotonic() + GRACE_S, cap)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if not stream.closed:
            stream.close()
    returncode = proc.wait()
    return Finished(returncode, bytes(tails[proc.stdout]), bytes(tails[proc.stderr]), timed_out, time.monotonic() - started)


def _pump(selector, proc, tails, pending: memoryview, deadline: float, cap: int) -> bool:
    """Move bytes until every stream is closed (False) or the deadline passes (True)."""
    while selector.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        for key, _ in selector.select(remaining):
            stream = key.fileobj
            if stream is proc.stdin:
                pending = _write_some(selector, stream, pending)
                continue
            chunk = os.read(stream.fileno(), 1 << 16)
            if not chunk:
                selector.unregister(stream)
                continue
            buffer = tails[stream]
            buffer += chunk
            if len(buffer) > cap:
                del buffer[: len(buffer) - cap]
    return False


def _write_some(selector, stream, pending: memoryview) -> memoryview:
    try:
        pending = pending[os.write(stream.fileno(), pending[: 1 << 16]) :]
    except BlockingIOError:
        return pending
    except (BrokenPipeError, ConnectionResetError):
        pending = pending[:0]  # the program stopped reading; it will fail on its own
    if not pending:
        selector.unregister(stream)
        stream.close()
    return pending


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process group; namespaces take the rest (bwrap --die-with-parent, unshare
    --kill-child: when the sandbox's init dies the kernel kills every process in its pid
    namespace, including ones that left the group with setsid)."""
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass
