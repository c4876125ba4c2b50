"""Where each check runs: the checker's fork server, a watcher per check, the check under its own budget.

The harness starts the server once per sandbox (`checker_server.py`), in a cgroup of its own
where it can make one. For each job the server forks a watcher, which reports its pid (the
harness kills it at the deadline) and forks the checker. The checker dies with its watcher
(PR_SET_PDEATHSIG), offers itself first to an OOM killer (oom_score_adj 1000) and runs the
tests under RLIMIT_AS and RLIMIT_CPU: the program's values are plain data, but tests expand
them (`tuple(r)`, a set of ints whose hashes collide), and before issue 24 that work ran
unbounded beside the sandbox (2 GB and 7 s of CPU for one answer). A budget hit is the
program's verdict, never the harness's `error`: a MemoryError or the SIGXCPU handler inside
the check give `failed` or `timeout` (`checker.py`); a checker killed outright (by the hard
CPU limit a second later, or by the cgroup's OOM killer) or crashed on the program's values
leaves the watcher to say so.

Why by hand: the standard library has every piece (fork, setrlimit, wait4), and no library
runs a trusted function under per-call limits short of a new interpreter per check, which
would cost more than the check itself; PR_SET_PDEATHSIG has no Python binding, hence ctypes.
Like `checker.py`, this text is shipped into the server's interpreter after `wire.py` and
`checker.py`, and imports nothing of the harness.
"""

import json
import os
import signal
import sys

MAX_VERDICT = 1 << 16  # bytes of the checker's verdict read by the watcher (it writes a few KB)
PR_SET_PDEATHSIG = 1
BUDGET = {}  # the running check's budget, for the SIGXCPU handler's message


def _read_all(fd, limit=None):
    chunks, size = [], 0
    while (limit is None or size <= limit) and (chunk := os.read(fd, 1 << 16)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _cpu_reason(budget):
    return f"the checker's CPU budget of {budget['cpu_s']} s ran out on the program's values"


def _out_of_cpu(signum, frame):
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)  # once: the hard limit kills a second later
    raise OverBudget(_cpu_reason(BUDGET))


def _checker(spec, channel_fd, verdict_fd, watcher):
    """The forked checker: bound itself, check, write the verdict to the watcher, exit."""
    import ctypes
    import resource

    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != watcher:  # the watcher died before prctl took hold
            return
        try:
            with open("/proc/self/oom_score_adj", "w") as handle:
                handle.write("1000")
        except OSError:
            pass
        BUDGET.update(spec["budget"])
        resource.setrlimit(resource.RLIMIT_AS, (BUDGET["memory_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (BUDGET["cpu_s"], BUDGET["cpu_s"] + 1))  # SIGXCPU, then SIGKILL
        signal.signal(signal.SIGXCPU, _out_of_cpu)
        try:
            verdict = check(spec, channel_fd)
        except OverBudget as exc:  # raised after the tests, while the program was told to stop
            verdict = {"status": "timeout", "reason": str(exc)}
        os.write(verdict_fd, json.dumps(verdict).encode())
    finally:
        os._exit(0)


def _verdict(line, status, usage, budget):
    """The checker's own verdict; else what ended it. A crash on the program's values is the
    program's failure: counting it as the harness's `error` would let the program choose that."""
    if line:
        try:
            verdict = json.loads(line)
        except ValueError:
            verdict = None
        return verdict if isinstance(verdict, dict) else {"status": "error", "reason": "unreadable checker verdict"}
    if not os.WIFSIGNALED(status):
        return {"status": "error", "reason": "the checker ended without a verdict"}
    number = os.WTERMSIG(status)
    if number in (signal.SIGXCPU, signal.SIGKILL) and usage.ru_utime + usage.ru_stime >= budget["cpu_s"]:
        return {"status": "timeout", "reason": _cpu_reason(budget)}
    if number == signal.SIGKILL:  # the watcher lives, so not the harness's deadline kill: the OOM killer
        return {"status": "failed", "reason": "the checkers' memory limit (cgroup) ran out on the program's values"}
    return {"status": "failed", "reason": f"the checker died of signal {number} on the program's values"}


def _job(job_fd, channel_fd):
    """The watcher of one check: pid line out, spec in, checker forked, verdict line out."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server ignores it; the watcher waits
        watcher = os.getpid()
        os.write(job_fd, b"%d\n" % watcher)  # so the harness can kill it at the deadline
        spec = json.loads(_read_all(job_fd))
        verdict_read, verdict_write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(job_fd)  # the job stream stays open exactly as long as the watcher lives
            os.close(verdict_read)
            _checker(spec, channel_fd, verdict_write, watcher)
        os.close(verdict_write)
        os.close(channel_fd)  # the program sees the channel's end when the checker's ends
        line = _read_all(verdict_read, MAX_VERDICT)
        _, status, usage = os.wait4(child, 0)
        os.write(job_fd, json.dumps(_verdict(line, status, usage, spec["budget"])).encode() + b"\n")
    finally:
        os._exit(0)


def _serve(control_fd):
    """The fork server: for each job (its socket and channel, passed as fds) fork a watcher.
    Its modules are imported once, here; each check still gets a process of its own."""
    import ctypes  # noqa: F401  (preloaded for the children, as is everything above)
    import decimal  # noqa: F401
    import fractions  # noqa: F401
    import random  # noqa: F401
    import resource  # noqa: F401
    import socket
    import traceback  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # watchers are reaped by the kernel
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 2)
        except InterruptedError:
            continue
        if not message:
            return
        try:
            forked = len(fds) == 2 and os.fork() == 0
        except OSError:  # out of tasks (the checkers' pids limit): this job ends without a verdict
            forked = False
        if forked:
            control.close()
            _job(*fds)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
