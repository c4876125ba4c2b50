"""The only way generated code runs: a sandboxed program, asked by a checker outside it.

Each job is a program (the completion, with what the benchmark puts before and after it) and
the benchmark's test code. The program runs in the strongest isolation that works here
(`isolation.py`), in a cgroup of its own when the host allows (`cgroups.py`), as a uid
reserved for it across the host's harness processes (`identities.py`) or in a user namespace
of its own, under rlimits and a seccomp filter (`entry.py`, `seccomp.py`). The test code
runs in a separate checker process (`checker.py`) that calls the program's functions over a
socket carrying only plain values (`wire.py`), so the verdict is decided where the program
cannot reach: nothing it prints, patches or returns can turn a failure into a pass. The
checker has a memory and CPU budget of its own (`checker_fork.py`; with cgroups, one cgroup
for all checks), so what the tests do with the program's values cannot grow past it either.
If no isolation works the harness refuses, unless the caller passes `allow_unsafe=True` (the
CLI's `--unsafe-no-sandbox`).

Outcomes: `passed`; `failed` (the program ran and did not pass: an exception, a failed
assert, a wrong or unreadable value, a resource limit); `timeout` (wall-clock or CPU limit);
`error` (the sandbox or checker itself could not run; counted apart in every summary).
"""

from __future__ import annotations

import collections
import json
import math
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

from harness.errors import HarnessError, one_line
from harness.eval.sandbox import cgroups, guarantees, identities, seccomp
from harness.eval.sandbox.cgroups import JOIN_CGROUP
from harness.eval.sandbox.checker_server import CheckerServer, kill_checker
from harness.eval.sandbox.config import SandboxConfig
from harness.eval.sandbox.isolation import NO_BWRAP_FIX, SANDBOX_WORKDIR, Launch, available_kinds, launch_for
from harness.eval.sandbox.status import classify
from harness.eval.sandbox.streams import Pump, has_exited, kill_tree, scrubbed_env, wait_for_exit

STATUSES = ("passed", "failed", "timeout", "error")
GRACE_S = 2.0  # after the verdict: how long a program that is ending may take to exit
# The checker's own memory per check: a base for the interpreter and the tests, plus room for
# the largest value a program may return to grow into Python objects (~25x its bytes, wire.py).
CHECKER_BASE_MB, CHECKER_GROWTH = 512, 32
# A cgroup's pids count bwrap's own two processes and the entry as well as the program's.
SANDBOX_OWN_TASKS = 3
QUEUED_SIGNALS = 64  # RLIMIT_SIGPENDING: no benchmark program queues signals or makes timers


@lru_cache(maxsize=None)
def entry_source() -> str:
    """The sandbox's first stage as one program text (`wire.py` + `entry.py`), read on first use."""
    here = Path(__file__).parent
    return "\n".join((here / name).read_text() for name in ("wire.py", "entry.py"))


@dataclass(frozen=True)
class Job:
    """What runs for one sample: `program` in the sandbox, the rest in the checker."""

    program: str
    tests: str
    prelude: str = ""  # trusted code the tests need (HumanEval's prompt, MBPP's test imports)
    call: tuple[str, str] | None = None  # HumanEval: ("check", entry point) after the tests
    remote: tuple[str, ...] = ()  # program names the tests call even where they shadow a builtin


@dataclass(frozen=True)
class Outcome:
    status: str  # one of STATUSES
    reason: str  # short, human-readable; empty when passed
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def as_dict(self) -> dict:
        return asdict(self)


def default_workers() -> int:
    """Programs at once when the config does not say: one per CPU of this process's share of
    the node. The ranks of a sharded evaluation on one node (LOCAL_WORLD_SIZE, set by torchrun
    and by the harness under Slurm) each run a sandbox, so each takes its part of the CPUs."""
    share = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, (os.cpu_count() or 1) // max(1, share))


class Sandbox:
    """A probed launch recipe, limits and (maybe) a cgroup hierarchy; `run` executes jobs."""

    def __init__(self, config: SandboxConfig, launch: Launch, python: str, hierarchy, cgroup_note: str):
        self.config, self.launch, self.python = config, launch, python
        self.hierarchy, self.cgroup_note = hierarchy, cgroup_note
        self.workers = config.workers or default_workers()
        self.seccomp = seccomp.build(processes=hierarchy is not None)
        # The programs' argv[1]: finds this sandbox's processes in `ps` (and the tests' checks).
        self.tag = f"mtp-harness-sandbox-{secrets.token_hex(6)}"
        # The uids programs run as (root only), held across processes (`identities.py`).
        self.identities = identities.reserve(config.uid_base, self.workers) if launch.switch_uid else None
        self._slots: queue.Queue[int | None] = queue.Queue()
        for uid in self.identities.uids if self.identities else [None] * self.workers:
            self._slots.put(uid)
        self.check_budget, self.checker_box = checker_budget(config), None
        if hierarchy is not None:
            hierarchy.weigh(self.workers)
            self.checker_box = _checkers_cgroup(hierarchy, self.workers, self.check_budget)
        self.checkers = CheckerServer(self.checker_box.procs_files if self.checker_box else ())
        self._finalizer = weakref.finalize(self, _release, self.checkers, self.checker_box, hierarchy, self.identities)

    @property
    def kind(self) -> str:
        return self.launch.kind

    @property
    def cpu_limit(self) -> int:
        return cpu_seconds(self.config)

    def describe(self) -> dict:
        """What a result must record to be reproducible and honest: kind, limits, guarantees."""
        limits = self.config.model_dump(exclude={"kind", "workers", "python", "cpu_s", "cgroups"})
        return {"kind": self.kind, "python": self.python, "cpu_s": cpu_seconds(self.config), **limits,
                **guarantees.of(self)}  # fmt: skip

    def run_many(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Outcomes in the jobs' order; jobs are drawn lazily, a few per worker ahead."""
        window = 2 * self.workers
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending: collections.deque = collections.deque()
            try:
                for job in jobs:
                    pending.append(pool.submit(self.run, job))
                    if len(pending) >= window:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # a consumer that stops (Ctrl-C, an error) waits only for what is running
                for future in pending:
                    future.cancel()

    def run(self, job: Job) -> Outcome:
        uid = self._slots.get()
        started = time.monotonic()
        try:
            status, reason = self._run(job, uid)
        finally:
            self._slots.put(uid)
        return Outcome(status, reason, round(time.monotonic() - started, 3))

    def _run(self, job: Job, uid: int | None) -> tuple[str, str]:
        c = self.config
        try:
            box = self.hierarchy.create(c.memory_mb << 20, c.max_processes + SANDBOX_OWN_TASKS) if self.hierarchy else None
        except OSError as exc:
            return "error", f"cannot make the program's cgroup: {one_line(exc)}"
        workdir = tempfile.mkdtemp(prefix="harness-sandbox-") if self.launch.host_workdir else None
        try:
            return self._run_in(job, uid, box, workdir)
        finally:
            if box is not None:
                box.kill()
                box.remove()
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)

    def _run_in(self, job: Job, uid: int | None, box, workdir: str | None) -> tuple[str, str]:
        c = self.config
        if workdir and uid is not None:
            os.chown(workdir, uid, uid)
        program_end, checker_end = socket.socketpair()
        job_ours, job_theirs = socket.socketpair()
        try:
            program = self._spawn_program(uid, box, workdir, program_end.fileno())
            self.checkers.submit(job_theirs.fileno(), checker_end.fileno())
        finally:
            for end in (program_end, checker_end, job_theirs):
                end.close()
        checker = _JobStream(job_ours, json.dumps(self._spec(job)).encode())
        pump = Pump()
        pump.feed(program.stdin, self._header(uid, program.channel) + job.program.encode("utf-8", "replace"))
        pump.collect(program.stderr, c.output_kb << 10)
        pump.collect(checker.stream, 1 << 16)
        started = time.monotonic()
        deadline = started + c.timeout_s
        finished = pump.run_until_closed([checker.stream], deadline)
        verdict = checker.verdict(pump.tail(checker.stream)) if finished else None
        if not finished:
            checker.kill(pump.tail(checker.stream))
        if verdict and verdict.get("ended"):
            wait_for_exit(program, time.monotonic() + GRACE_S)  # its own exit status is the reason
        ended_itself = has_exited(program)
        kill_tree(program)
        if box is not None:
            box.kill()
        pump.run_until_closed([program.stderr], time.monotonic() + GRACE_S)
        program.wait()
        facts = dict(timed_out=not finished, returncode=program.returncode if ended_itself else None,
                     seconds=time.monotonic() - started, oom_kills=box.oom_kills() if box else 0,
                     stderr=pump.tail(program.stderr))  # fmt: skip
        pump.close()
        return classify(verdict, facts, self)

    def _spawn_program(self, uid, box, workdir, channel: int) -> subprocess.Popen:
        argv, fds = [*self.launch.prefix, self.python, "-c", entry_source(), self.tag], [channel]
        filter_fd = None
        if self.kind == "bwrap" and self.seccomp:  # bwrap installs it, before our entry runs
            filter_fd, write_end = os.pipe()
            os.write(write_end, self.seccomp)  # a few hundred bytes: well within a pipe's buffer
            os.close(write_end)
            argv[1:1] = ["--seccomp", str(filter_fd)]
            fds.append(filter_fd)
        if box is not None:  # join the cgroup before anything of the sandbox runs
            argv = ["/bin/sh", "-c", JOIN_CGROUP, "mtp-cgroup-join", *box.procs_files, "--", *argv]
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=fds,
                cwd=workdir or "/", env=scrubbed_env(workdir or SANDBOX_WORKDIR), start_new_session=True,
            )  # fmt: skip
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
        proc.channel = channel
        return proc

    def _header(self, uid: int | None, channel: int) -> bytes:
        """What the entry needs before the program: uid, rlimits, filter (when bwrap does not
        install it), the channel's fd and, for `unshare`, the private mounts."""
        c = self.config
        cpu = cpu_seconds(c)
        limits = {
            "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU first, so a CPU limit reads as one
            "RLIMIT_AS": (c.memory_mb << 20,) * 2,
            "RLIMIT_NPROC": (c.max_processes,) * 2,
            "RLIMIT_FSIZE": (c.max_file_mb << 20,) * 2,
            "RLIMIT_NOFILE": (c.max_open_files,) * 2,
            "RLIMIT_CORE": (0, 0),
            # Queued real-time signals and POSIX timers (each holds one) are kernel memory that
            # only a cgroup charges, counted per user: as an ordinary user the program would
            # otherwise share the user's own quota (96k here, ~36 MB of timers).
            "RLIMIT_SIGPENDING": (QUEUED_SIGNALS,) * 2,
        }
        private = [c.tmpfs_mb << 20, max(1024, c.tmpfs_mb * 256)] if self.launch.private_mounts else None
        own_filter = self.seccomp and self.kind != "bwrap"
        header = {"uid": uid, "limits": limits, "seccomp": self.seccomp.hex() if own_filter else None,
                  "channel": channel, "frame_limit": 1 << 30, "private_mounts": private}  # fmt: skip
        return json.dumps(header).encode() + b"\n"

    def _spec(self, job: Job) -> dict:
        return {"prelude": job.prelude, "tests": job.tests, "call": job.call,
                "remote": list(job.remote), "seed": 0, "budget": self.check_budget,
                "frame_limit": self.config.value_kb << 10}  # fmt: skip

    def close(self) -> None:
        self._finalizer()


def _checkers_cgroup(hierarchy, workers: int, budget: dict):
    """One cgroup for the checker server and its checks: one program's CPU share for all of
    them, and their memory bounded together as well as each by RLIMIT_AS. None where the
    hierarchy refuses (the checks keep their rlimits)."""
    try:
        return hierarchy.create(workers * budget["memory_bytes"] + (64 << 20), 4 * workers + 8, name="checkers")
    except OSError:
        return None


def _release(checkers: CheckerServer, checker_box, hierarchy, held) -> None:
    """Server first (it leaves its cgroup empty), then the cgroups, innermost first, and the
    uids last, once nothing of this sandbox can run as them."""
    checkers.close()
    if checker_box is not None:
        checker_box.kill()
        checker_box.remove()
    if hierarchy is not None:
        hierarchy.remove()
    if held is not None:
        held.release()


class _JobStream:
    """The harness's end of one checker job: the spec goes in, `pid\\n` and the verdict come out."""

    def __init__(self, sock: socket.socket, spec: bytes):
        try:
            sock.sendall(spec)  # the checker reads it at once; specs are kilobytes
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server died with the job: no verdict will come, an `error` outcome
        self.stream = os.fdopen(sock.detach(), "rb", buffering=0)

    @staticmethod
    def verdict(output: bytes) -> dict | None:
        lines = output.split(b"\n")
        if len(lines) < 2:
            return None
        try:
            verdict = json.loads(lines[1])
        except ValueError:
            return None
        return verdict if isinstance(verdict, dict) and verdict.get("status") in STATUSES else None

    @staticmethod
    def kill(output: bytes) -> None:
        """At the deadline the job stream is still open, so the checker is still alive."""
        first = output.split(b"\n", 1)[0]
        if first.isdigit() and b"\n" in output:
            kill_checker(int(first))


def cpu_seconds(config: SandboxConfig) -> int:
    return config.cpu_s or math.ceil(config.timeout_s)


def checker_budget(config: SandboxConfig) -> dict:
    """What one check may spend (`checker_fork.py`): the program's CPU limit, and memory."""
    memory = (CHECKER_BASE_MB << 20) + CHECKER_GROWTH * (config.value_kb << 10)
    return {"memory_bytes": memory, "cpu_s": cpu_seconds(config)}




@lru_cache(maxsize=None)
def interpreter_dirs(python: str) -> tuple[str, ...]:
    """The interpreter's prefixes (venv and base install): what the sandbox must see."""
    query = "import json, os, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, " \
            "sys.base_exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]))"  # fmt: skip
    try:
        out = subprocess.run([python, "-I", "-c", query], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise HarnessError(f"cannot run the sandbox interpreter {python}: {one_line(exc)}") from None
    return tuple(json.loads(out.stdout))


def make_launch(kind: str, python: str, config: SandboxConfig, switch_uid: bool = True) -> Launch:
    return launch_for(kind, list(interpreter_dirs(python)), tmpfs_mb=config.tmpfs_mb, switch_uid=switch_uid)


def _cgroups(config: SandboxConfig):
    """(hierarchy or None, a note saying why none), honouring `cgroups: required|off`."""
    if config.cgroups == "off":
        return None, "off (eval.sandbox.cgroups)"
    hierarchy, why = cgroups.discover()
    if hierarchy is None and config.cgroups == "required":
        raise HarnessError(
            f"eval.sandbox.cgroups is required but no cgroup can be made here: {why}",
            fix="run as root, or inside a delegated cgroup v2 subtree (systemd-run --user --scope -p Delegate=yes ...), "
            "or set eval.sandbox.cgroups=auto to run with the weaker per-process limits",
        )
    return hierarchy, why


def open_sandbox(config: SandboxConfig | None = None, *, allow_unsafe: bool = False) -> Sandbox:
    """The strongest isolation that passes a probe here, or a refusal naming the fix."""
    config = config or SandboxConfig()
    python = config.python or sys.executable
    if config.kind == "unshare":
        make_launch("unshare", python, config)  # an ordinary user: refused, naming bubblewrap
    kinds = [k for k in available_kinds() if k != "none"] if config.kind == "auto" else [config.kind]
    failures = []
    for kind in kinds:
        problem = probe(kind, python, config.tmpfs_mb, config.uid_base, config.cgroups)
        if problem is None:
            return Sandbox(config, make_launch(kind, python, config), python, *_cgroups(config))
        failures.append(f"{kind}: {problem}")
    if allow_unsafe:
        # Still switch to unprivileged uids when the interpreter allows it (so RLIMIT_NPROC
        # holds); an interpreter only root can read leaves the program running as root.
        switch = probe("none", python, config.tmpfs_mb, config.uid_base, config.cgroups) is None
        return Sandbox(config, make_launch("none", python, config, switch_uid=switch), python, *_cgroups(config))
    tried = "; ".join(failures) or "bwrap is not installed"
    raise HarnessError(
        f"no working sandbox for generated code ({tried})",
        fix=f"{NO_BWRAP_FIX}, or pass --unsafe-no-sandbox to run model code unisolated",
    )


PROBE_JOB = Job(
    program="import collections, itertools, json, math, re\ndef gcd(a, b):\n    return math.gcd(a, b)\n",
    tests="assert gcd(12, 18) == 6\n",
)


@lru_cache(maxsize=None)
def probe(kind: str, python: str, tmpfs_mb: int, uid_base: int, cgroups_mode: str) -> str | None:
    """None if a trivial job passes under this kind, else why not (cached per process)."""
    config = SandboxConfig(python=python, tmpfs_mb=tmpfs_mb, uid_base=uid_base, cgroups=cgroups_mode, timeout_s=30,
                           workers=1)  # fmt: skip
    try:
        box = Sandbox(config, make_launch(kind, python, config), python, *_cgroups(config))
    except (OSError, HarnessError) as exc:
        return one_line(getattr(exc, "problem", exc))
    try:
        outcome = box.run(PROBE_JOB)
    except OSError as exc:
        return one_line(exc)
    finally:
        box.close()
    if outcome.passed:
        return None
    hint = ""
    if os.geteuid() == 0 and kind != "bwrap":
        hint = f" (is {python} readable by uid {uid_base}? interpreters under /root are not)"
    return f"probe program {outcome.status}: {outcome.reason}{hint}"
