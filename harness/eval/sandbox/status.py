"""From a checker's verdict and what the harness saw of the program to (status, one-line reason).

Only the checker can say `passed`. Everything else the harness knows about the program (its
exit status, CPU time, the cgroup's OOM kills, its stderr) only sharpens the reason for a
failure, or marks an `error` when the sandbox or the checker could not run at all.
"""

from __future__ import annotations

import re
import signal
import unicodedata

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
MAX_REASON = 200


def clean(text: str) -> str:
    """One printable line: ANSI sequences, NULs and other control characters removed."""
    text = ANSI.sub("", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())[:MAX_REASON]


def classify(verdict: dict | None, facts: dict, sandbox) -> tuple[str, str]:
    """facts: timed_out, returncode (None unless the program exited on its own), seconds
    (wall time), oom_kills, stderr (its tail)."""
    config = sandbox.config
    if verdict is not None and verdict["status"] == "passed":
        return "passed", ""
    if facts["timed_out"]:
        return "timeout", f"wall-clock limit of {config.timeout_s:g} s"
    if verdict is None:
        return "error", "the checker ended without a verdict"
    if verdict.get("stage") == "start":
        code = facts["returncode"]
        why = _last_line(facts["stderr"]) or (f"exit status {code}" if code is not None else "no report")
        return "error", "sandbox did not start: " + why
    if facts["oom_kills"]:
        return "failed", f"memory limit of {config.memory_mb} MB (whole sandbox) reached"
    limit = _limit_reason(facts, sandbox)
    if limit is not None:
        return limit
    return verdict["status"], clean(str(verdict.get("reason", ""))) or verdict["status"]


CPU_MARKER = b"\x1emtp-harness: CPU limit"  # written by the entry's SIGXCPU handler


def _limit_reason(facts: dict, sandbox) -> tuple[str, str] | None:
    """A program that died of a signal: which limit it hit, if one, else the signal."""
    sig = _signal_of(facts["returncode"], sandbox.kind)
    if sig is None:
        return None
    cpu_limit = sandbox.cpu_limit
    # bwrap reports a child killed by signal N as 128+N, which a program can also exit
    # with: the entry's marker tells SIGXCPU apart, and the SIGKILL at the hard CPU limit
    # (code stuck in C when SIGXCPU came) needs at least the limit's time.
    if sig == signal.SIGXCPU and CPU_MARKER in facts["stderr"]:
        return "timeout", f"CPU limit of {cpu_limit} s"
    if sig == signal.SIGKILL and facts["seconds"] >= cpu_limit + 1:
        return "timeout", f"CPU limit of {cpu_limit} s (killed at the hard limit)"
    if sig == signal.SIGXFSZ:
        return "failed", f"file size limit of {sandbox.config.max_file_mb} MB exceeded"
    if facts["returncode"] > 0:
        return "failed", f"exit status {facts['returncode']}"
    return "failed", f"killed by {signal_name(sig)}"


def signal_name(number: int) -> str:
    """Any signal number a program can die of, named without raising: `signal.Signals` has no
    member for the real-time ones (40 is SIGRTMIN+6 here), and one program's `os.kill(os.getpid(),
    40)` once ended the whole scoring with a ValueError (issue 24)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        pass
    if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    return f"signal {number}"


def _signal_of(returncode: int | None, kind: str) -> int | None:
    if returncode is None or returncode == 0:
        return None
    if returncode < 0:
        return -returncode
    # bwrap's init and our entry-as-init report a child killed by signal N as 128+N.
    if kind != "none" and 128 < returncode < 128 + signal.NSIG:
        return returncode - 128
    return None


def _last_line(data: bytes) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return clean(lines[-1]) if lines else ""
