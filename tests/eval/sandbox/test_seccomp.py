"""The filter's shape; what it denies is tested from inside the sandbox (test_sandbox_limits.py)."""

from __future__ import annotations

import struct

from harness.eval.sandbox import seccomp


def instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]


def test_the_filter_checks_the_architecture_first_and_allows_by_default():
    for machine in ("x86_64", "aarch64"):
        program = instructions(seccomp.build(processes=True, machine=machine))
        assert program[0] == (seccomp.LD_W_ABS, 0, 0, seccomp.ARCH_OFFSET)
        assert program[1][0] == seccomp.JEQ_K and program[1][3] == seccomp.ARCHES[machine][0]
        assert program[-1] == (seccomp.RET_K, 0, 0, seccomp.RET_ALLOW)
        assert all(jt + index < len(program) and jf + index < len(program) for index, (_, jt, jf, _) in enumerate(program))


def test_without_processes_fork_is_denied_too():
    numbers = seccomp.ARCHES["x86_64"][1]
    denied = lambda prog: {k for code, _, _, k in instructions(prog) if code == seccomp.JEQ_K}  # noqa: E731
    assert numbers["fork"] in denied(seccomp.build(processes=False, machine="x86_64"))
    assert numbers["fork"] not in denied(seccomp.build(processes=True, machine="x86_64"))


def test_an_unknown_architecture_gets_no_filter():
    assert seccomp.build(processes=True, machine="riscv64") is None
