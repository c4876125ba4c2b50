"""The only way generated code runs: one isolated, resource-limited process per program.

Each program runs under the strongest isolation that works here (`isolation.py`: bubblewrap,
else `unshare`), with rlimits set inside the sandbox by the bootstrap (`bootstrap.py`), a
scrubbed environment, a wall-clock timeout that kills the whole process tree, and stdout and
stderr captured up to a size cap. A program passes only when it exits 0 *and* prints the
per-run nonce that the bootstrap writes after the program's last line, so a program that
exits before its tests ran is a failure. If no isolation works the harness refuses, unless
the caller passes `allow_unsafe=True` (the CLI's `--unsafe-no-sandbox`).

Outcomes: `passed`; `failed` (the program ran and did not pass: an exception, a failed
assert, an early or non-zero exit, a resource limit); `timeout` (wall-clock or CPU limit);
`error` (the sandbox itself could not run the program; never counted as the model's fault
silently, the summary reports how many).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import HarnessError, one_line
from harness.eval import bootstrap
from harness.eval.isolation import SANDBOX_WORKDIR, Launch, available_kinds, launch_for
from harness.eval.streams import communicate

STATUSES = ("passed", "failed", "timeout", "error")


class SandboxConfig(BaseModel):
    """Limits per program. Defaults are generous for HumanEval/MBPP on a loaded 2-core laptop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["auto", "bwrap", "unshare"] = Field(
        default="auto", description="auto: bwrap, else unshare; running without isolation is a CLI flag, never a recipe value"
    )
    # MBPP 123's reference solution needs 4-9 s on a loaded 2-core machine; 20 s keeps every
    # canonical solution passing without letting an infinite loop cost much.
    timeout_s: float = Field(default=20.0, gt=0, description="wall-clock seconds per program; the process tree is killed")
    cpu_s: int | None = Field(default=None, ge=1, description="RLIMIT_CPU per process; None: timeout_s rounded up")
    memory_mb: int = Field(default=4096, ge=64, description="RLIMIT_AS, address space per process")
    max_processes: int = Field(default=64, ge=1, description="RLIMIT_NPROC (threads count too): stops fork bombs")
    max_file_mb: int = Field(default=16, ge=1, description="RLIMIT_FSIZE, largest file a program may write")
    max_open_files: int = Field(default=64, ge=16, description="RLIMIT_NOFILE")
    tmpfs_mb: int = Field(default=64, ge=1, description="size of the private working directory (bwrap tmpfs)")
    output_kb: int = Field(default=64, ge=1, description="stdout/stderr kept per program (the tail); the rest is discarded")
    workers: int | None = Field(default=None, ge=1, description="programs run in parallel; None: one per CPU")
    python: str | None = Field(default=None, description="interpreter for programs; None: the one running the harness")
    uid: int = Field(default=65534, ge=1, description="unprivileged uid programs run as when the harness runs as root")


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


class Sandbox:
    """A probed launch recipe plus limits; `run` and `run_many` execute untrusted programs."""

    def __init__(self, config: SandboxConfig, launch: Launch, python: str):
        self.config = config
        self.launch = launch
        self.python = python
        self.workers = config.workers or os.cpu_count() or 1

    @property
    def kind(self) -> str:
        return self.launch.kind

    def describe(self) -> dict:
        """What a result must record to be reproducible: the isolation kind and the limits."""
        limits = self.config.model_dump(exclude={"kind", "workers", "python", "cpu_s"})
        return {"kind": self.kind, "python": self.python, "cpu_s": cpu_seconds(self.config), **limits}

    def run_many(self, programs: Sequence[str], progress: Callable[[int], None] | None = None) -> list[Outcome]:
        """Run programs in parallel worker threads (each waits on its own process); order kept."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            outcomes = []
            for outcome in pool.map(self.run, programs):
                outcomes.append(outcome)
                if progress:
                    progress(len(outcomes))
        return outcomes

    def run(self, program: str) -> Outcome:
        nonce = secrets.token_hex(16)
        header = {"uid": self.launch.drop_to_uid, "limits": self._rlimits(), "nonce": nonce}
        payload = (json.dumps(header) + "\n" + program).encode("utf-8", "replace")
        workdir = self._make_workdir() if self.launch.host_workdir else None
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                [*self.launch.prefix, self.python, "-c", bootstrap.SOURCE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=workdir or "/", env=scrubbed_env(workdir or SANDBOX_WORKDIR), start_new_session=True,
            )  # fmt: skip
            result = communicate(proc, payload, self.config.timeout_s, self.config.output_kb << 10)
        finally:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        status, reason = classify(result, nonce, self.launch.kind, self.config)
        return Outcome(status, reason, round(time.monotonic() - started, 3))

    def _rlimits(self) -> dict[str, int]:
        c = self.config
        return {
            "RLIMIT_CPU": cpu_seconds(c),
            "RLIMIT_AS": c.memory_mb << 20,
            "RLIMIT_NPROC": c.max_processes,
            "RLIMIT_FSIZE": c.max_file_mb << 20,
            "RLIMIT_NOFILE": c.max_open_files,
            "RLIMIT_CORE": 0,
        }

    def _make_workdir(self) -> str:
        workdir = tempfile.mkdtemp(prefix="harness-sandbox-")
        if self.launch.drop_to_uid is not None:
            os.chown(workdir, self.launch.drop_to_uid, self.launch.drop_to_uid)
        return workdir


def cpu_seconds(config: SandboxConfig) -> int:
    return config.cpu_s or math.ceil(config.timeout_s)


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
        "OMP_NUM_THREADS": "1",  # BLAS thread pools count against RLIMIT_NPROC
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def classify(result, nonce: str, kind: str, config: SandboxConfig) -> tuple[str, str]:
    """(status, reason) from the exit status and the captured output tails."""
    if result.timed_out:
        return "timeout", f"wall-clock limit of {config.timeout_s:g} s"
    stderr = result.stderr.decode("utf-8", "replace")
    started = bootstrap.MARKER in stderr
    stderr = stderr.replace(bootstrap.MARKER + "\n", "")
    sig = _signal_of(result.returncode, kind)
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and _cpu_exhausted(result, config)):
        return "timeout", f"CPU limit of {cpu_seconds(config)} s"
    if not started:
        return "error", "sandbox did not start: " + (_last_line(stderr) or f"exit status {result.returncode}")
    last = result.stdout.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if result.returncode == 0 and last == nonce.encode():
        return "passed", ""
    if sig is not None:
        return "failed", _signal_reason(sig, config)
    if result.returncode == 0:
        return "failed", "exited with status 0 before the tests finished"
    return "failed", _exception_reason(stderr) or f"exit status {result.returncode}"


def _signal_of(returncode: int, kind: str) -> int | None:
    if returncode < 0:
        return -returncode
    # bwrap's init and our bootstrap-as-init report a child killed by signal N as 128+N.
    if kind != "none" and 128 < returncode < 128 + signal.NSIG:
        return returncode - 128
    return None


def _cpu_exhausted(result, config: SandboxConfig) -> bool:
    return result.seconds >= cpu_seconds(config)  # SIGKILL at the hard CPU limit


def _signal_reason(sig: int, config: SandboxConfig) -> str:
    if sig == signal.SIGXFSZ:
        return f"file size limit of {config.max_file_mb} MB exceeded"
    return f"killed by {signal.Signals(sig).name}"


def _exception_reason(stderr: str) -> str:
    """The exception line of a traceback, with the program line it came from."""
    line = _last_line(stderr)
    where = [ln for ln in stderr.splitlines() if ln.strip().startswith('File "<program>", line ')]
    if where and line:
        number = where[-1].split("line ", 1)[1].split(",")[0]
        line = f"{line} (line {number})"
    return one_line(line)[:200]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return one_line(lines[-1])[:200] if lines else ""


def open_sandbox(config: SandboxConfig | None = None, *, allow_unsafe: bool = False) -> Sandbox:
    """The strongest isolation that passes a probe here, or a refusal naming the fix."""
    config = config or SandboxConfig()
    python = config.python or sys.executable
    kinds = [k for k in available_kinds() if k != "none"] if config.kind == "auto" else [config.kind]
    failures = []
    for kind in kinds:
        problem = probe(kind, python, config.uid, config.tmpfs_mb)
        if problem is None:
            return Sandbox(config, _launch(kind, python, config), python)
        failures.append(f"{kind}: {problem}")
    if allow_unsafe:
        # Still switch to the unprivileged uid when the interpreter allows it (so RLIMIT_NPROC
        # holds); an interpreter only root can read leaves the program running as root.
        drop = probe("none", python, config.uid, config.tmpfs_mb) is None
        return Sandbox(config, _launch("none", python, config, drop=drop), python)
    tried = "; ".join(failures) or "neither bwrap nor unshare is installed"
    raise HarnessError(
        f"no working sandbox for generated code ({tried})",
        fix="install bubblewrap (apt-get install -y bubblewrap), or pass --unsafe-no-sandbox to run model code unisolated",
    )


PROBE_PROGRAM = "import collections, itertools, json, math, re\nassert math.gcd(12, 18) == 6\n"


@lru_cache(maxsize=None)
def probe(kind: str, python: str, uid: int, tmpfs_mb: int) -> str | None:
    """None if a trivial program passes under this kind, else why not (cached per process)."""
    config = SandboxConfig(python=python, uid=uid, tmpfs_mb=tmpfs_mb, timeout_s=30)
    try:
        outcome = Sandbox(config, _launch(kind, python, config), python).run(PROBE_PROGRAM)
    except OSError as exc:
        return one_line(exc)
    if outcome.passed:
        return None
    hint = ""
    if os.geteuid() == 0 and kind != "bwrap":
        hint = f" (is {python} readable by uid {uid}? interpreters under /root are not)"
    return f"probe program {outcome.status}: {outcome.reason}{hint}"


def _launch(kind: str, python: str, config: SandboxConfig, drop: bool = True) -> Launch:
    return launch_for(kind, list(interpreter_dirs(python)), uid=config.uid, tmpfs_mb=config.tmpfs_mb, drop=drop)


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
