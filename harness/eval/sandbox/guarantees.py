"""What a sandbox guarantees here, in words: recorded in every summary and printed by the CLI.

The same words back README's "Guarantees" table; the tests check each claim with a hostile
program, as root and as an unprivileged user.
"""

from __future__ import annotations

from pathlib import Path

# `harness eval reference --split all` (a slow test) passes every problem this way.
VERDICTS = ("decided by a checker outside the sandbox; problems checked inside the program: "
            "HumanEval 0 of 164, MBPP 0 of 974, sanitized MBPP 0 of 427")  # fmt: skip
VISIBILITY = {
    "bwrap": "only system directories and the interpreter, read-only; private /tmp and /dev/shm",
    "unshare": "the host's files, read-only, where their permissions let the program's uid read; "
    "private /tmp, /var/tmp and /dev/shm",
    "none": "everything the harness user can read and write (no isolation)",
}


def autogroup_enabled() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def of(sandbox) -> dict[str, str]:
    """One short sentence per guarantee (keys become `sandbox_<key>` in summary.json)."""
    c, hierarchy = sandbox.config, sandbox.hierarchy
    if hierarchy is not None:
        cgroup = f"v{hierarchy.version} ({', '.join(sorted(hierarchy.parents)) or 'memory, pids, cpu'})"
        memory = f"{c.memory_mb} MB for the whole sandbox: processes, tmpfs, shm and kernel memory (cgroup)"
        processes = f"{c.max_processes} tasks, threads included (cgroup pids.max)"
        cpu = "equal share per program (own cgroup)" if hierarchy.version == 2 or "cpu" in hierarchy.parents else None
    else:
        cgroup = f"none: {sandbox.cgroup_note}"
        memory = (f"{c.memory_mb} MB per process (RLIMIT_AS); new processes are denied, so this bounds the sandbox, "
                  f"except kernel memory for files in its {c.tmpfs_mb} MB tmpfs")  # fmt: skip
        processes = f"threads only ({c.max_processes}, RLIMIT_NPROC); fork is denied without a cgroup"
        cpu = None
    if cpu is None:
        cpu = "equal share per program session (kernel autogroup; setsid denied)" if autogroup_enabled() else \
              "not guaranteed: no cpu cgroup and kernel autogroup is off"  # fmt: skip
    budget = sandbox.check_budget
    checker = (f"{budget['memory_bytes'] >> 20} MB and {budget['cpu_s']} s of CPU per check (RLIMIT_AS, RLIMIT_CPU), "
               + ("all checks in one cgroup of their own" if sandbox.checker_box is not None else "no cgroup")
               + "; the program fails (or times out) when its values exhaust them")  # fmt: skip
    if sandbox.launch.switch_uid:
        identity = (f"own uid per parallel program, reserved against every other harness process on this host "
                    f"(a lock per uid, from {c.uid_base})")  # fmt: skip
    else:
        identity = "own user namespace per program" if sandbox.kind == "bwrap" else "the harness user's"
    return {
        "verdicts": VERDICTS,
        "isolation": VISIBILITY[sandbox.kind],
        "identity": identity,
        "cgroup": cgroup,
        "memory": memory,
        "processes": processes,
        "cpu_share": cpu,
        "checker": checker,
        "syscalls": "seccomp: no nested namespaces, setsid, SysV IPC, POSIX queues, memfd, AIO, io_uring, inotify, "
        "sockets other than AF_UNIX, socket buffer sizes, mount, ptrace, keyrings, bpf"
        if sandbox.seccomp else "no seccomp filter (unknown architecture)",
    }


KEYS = ("verdicts", "isolation", "identity", "cgroup", "memory", "processes", "cpu_share", "checker", "syscalls")


def as_lines(described: dict) -> list[str]:
    """`describe()` (or a summary's `sandbox_*` keys) as the lines the CLI prints."""
    get = lambda key: described.get(key, described.get(f"sandbox_{key}"))  # noqa: E731
    lines = [f"sandbox {get('kind')}: {key.replace('_', ' ')}: {get(key)}" for key in KEYS if get(key) is not None]
    return lines
