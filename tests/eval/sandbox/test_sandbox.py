"""The sandbox against hostile programs: each must fail, leave the host untouched and stop in time.

Every test runs under each configuration that works here (`isolated` fixture: bubblewrap
with and without cgroups, and the `unshare` fallback); the others are skipped with the
reason. The attacks on verdicts, neighbours and limits have their own files
(`test_sandbox_forgery.py`, `test_sandbox_neighbours.py`, `test_sandbox_limits.py`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.eval.sandbox import runner as sandbox_module
from harness.eval.sandbox.config import SandboxConfig
from harness.eval.sandbox.runner import Job, open_sandbox

SLACK_S = 6.0  # start-up and kill time allowed beyond the 5 s timeout, on a loaded machine


def job(program: str, tests: str = "assert main() == 'done'\n") -> Job:
    """A program whose module body is the attack, checked by calling its `main()`."""
    return Job(program=program + "\ndef main():\n    return 'done'\n", tests=tests)


def run_timed(box, program: str, tests: str = "assert main() == 'done'\n"):
    started = time.monotonic()
    outcome = box.run(job(program, tests))
    elapsed = time.monotonic() - started
    assert elapsed < box.config.timeout_s + SLACK_S, f"took {elapsed:.1f} s"
    return outcome


def sandbox_processes(box) -> int:
    """Live processes of this sandbox's programs (their argv carries the sandbox's tag)."""
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            count += entry.name.isdigit() and box.tag.encode() in (entry / "cmdline").read_bytes()
        except OSError:
            pass
    return count


def test_a_correct_program_passes_and_a_wrong_one_fails(isolated):
    assert isolated.run(Job(program="def f(x):\n    return x + 1\n", tests="assert f(1) == 2\n")).status == "passed"
    outcome = isolated.run(Job(program="def f(x):\n    return x\n", tests="assert f(1) == 2\n"))
    assert (outcome.status, outcome.reason) == ("failed", "AssertionError at test line 1: assert f(1) == 2")


def test_fork_bomb(isolated):
    outcome = run_timed(isolated, "import os\nwhile True:\n    os.fork()\n")
    assert outcome.status in ("failed", "timeout")
    time.sleep(0.5)
    assert sandbox_processes(isolated) == 0, "fork bomb processes survived the sandbox"


def test_infinite_loop_is_a_timeout(isolated):
    assert run_timed(isolated, "while True:\n    pass\n").status == "timeout"
    assert run_timed(isolated, "", "assert spin()\n").status != "passed"  # undefined name


def test_infinite_loop_inside_a_call_is_a_timeout(isolated):
    outcome = isolated.run(Job(program="def f():\n    while True:\n        pass\n", tests="assert f() == 1\n"))
    assert outcome.status == "timeout"


def test_cpu_limit_is_told_from_a_plain_exit(isolated):
    box = open_sandbox(isolated.config.model_copy(update={"cpu_s": 1, "timeout_s": 8}))
    try:
        spin = box.run(job("while True:\n    pass\n"))
        assert (spin.status, spin.reason) == ("timeout", "CPU limit of 1 s")
        plain = box.run(job("import os\nos._exit(152)\n"))  # 128 + SIGXCPU, without the CPU time
        assert plain.status == "failed" and "CPU" not in plain.reason
    finally:
        box.close()


def test_sleeping_child_that_left_the_session_is_killed_too(isolated):
    program = "import os, time\nif os.fork() == 0:\n    time.sleep(1000)\ntime.sleep(1000)\n"
    assert run_timed(isolated, program).status in ("timeout", "failed")  # failed: fork denied
    time.sleep(0.5)
    assert sandbox_processes(isolated) == 0


def test_ten_gigabyte_allocation(isolated):
    outcome = run_timed(isolated, "block = bytearray(10 * 1024 ** 3)\n")
    assert outcome.status == "failed" and "MemoryError" in outcome.reason


def test_deleting_a_file_outside_the_work_dir(isolated, tmp_path):
    # World-writable on purpose: only the sandbox stands between the program and the file.
    directory = Path(tempfile.mkdtemp(prefix="harness-victim-"))
    try:
        directory.chmod(0o777)
        victim = directory / "precious.txt"
        victim.write_text("keep me")
        victim.chmod(0o666)
        program = f"import os\nos.remove({str(victim)!r})\n"
        assert run_timed(isolated, program).status == "failed"
        assert victim.read_text() == "keep me"
    finally:
        shutil.rmtree(directory)


@pytest.mark.parametrize("place", ["/tmp", "/var/tmp", "/dev/shm", "/dev", "/"])
def test_writes_never_reach_the_host(isolated, place):
    """The private tmpfs take writes to /tmp and /dev/shm; the rest is read-only or absent."""
    name = f"harness-planted-{secrets.token_hex(6)}"
    program = f"try:\n    open({os.path.join(place, name)!r}, 'w').write('x')\nexcept OSError:\n    pass\n"
    assert run_timed(isolated, program).status == "passed"
    assert not os.path.exists(os.path.join(place, name))


def test_writing_into_the_interpreter_is_refused(isolated):
    program = "import os, sys\nopen(os.path.join(sys.prefix, 'planted.py'), 'w').write('x')\n"
    assert run_timed(isolated, program).status == "failed"
    assert not any(Path(p, "planted.py").exists() for p in {os.sys.prefix, os.sys.base_prefix})


def test_socket_to_a_host_listener(isolated):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        program = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'leak')\n"
        assert run_timed(isolated, program).status == "failed"
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()


def test_environment_secret_is_not_visible(isolated, monkeypatch):
    secret = secrets.token_hex(8)
    monkeypatch.setenv("HARNESS_TEST_SECRET", secret)
    program = (
        "import glob, os\n"
        "found = os.environ.get('HARNESS_TEST_SECRET', '')\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        found += open(path, 'rb').read().decode(errors='replace')\n"
        "    except OSError:\n"
        "        pass\n"
        f"def leaked():\n    return {secret!r} in found\n"
    )
    outcome = run_timed(isolated, program, "assert leaked()\n")
    assert outcome.status == "failed" and outcome.reason.startswith("AssertionError")


def test_huge_file_write(isolated):
    free_before = shutil.disk_usage(tempfile.gettempdir()).free
    program = "chunk = b'0' * (1 << 20)\nwith open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(chunk)\n"
    outcome = run_timed(isolated, program)
    assert outcome.status == "failed"
    assert any(text in outcome.reason for text in ("File too large", "file size limit", "No space left"))
    assert shutil.disk_usage(tempfile.gettempdir()).free > free_before - (512 << 20)


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_early_exit_before_the_tests(isolated, exit_call):
    outcome = run_timed(isolated, exit_call)
    assert outcome.status == "failed" and "while loading" in outcome.reason


def test_killing_everything_it_can_see(isolated):
    program = (
        "import os, signal\n"
        f"for pid in (os.getppid(), {os.getpid()}, 1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
        "os.kill(-1, signal.SIGKILL)\n"
    )
    assert run_timed(isolated, program).status in ("failed", "error")
    assert isolated.run(Job(program="def f():\n    return 2\n", tests="assert f() == 2\n")).passed  # harness unharmed


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_flood_of_output_never_turns_a_pass_into_an_error(isolated, stream):
    program = f"import sys\nfor i in range(20000):\n    print('debug line', i, file=sys.{stream})\n"
    assert run_timed(isolated, program).status == "passed"


def test_parallel_runs_keep_order(isolated):
    jobs = [Job(program=f"def f():\n    return {i}\n", tests="assert f() % 2 == 0\n") for i in range(6)]
    assert [o.status for o in isolated.run_many(jobs)] == ["passed", "failed"] * 3


def test_reasons_are_one_clean_line(isolated):
    program = "def f():\n    raise ValueError('a\\x00b\\x1b[31mred\\x1b[0m\\nsecond line')\n"
    outcome = isolated.run(Job(program=program, tests="assert f()\n"))
    assert outcome.status == "failed" and outcome.reason.isprintable()
    assert "ValueError" in outcome.reason and "\x1b" not in outcome.reason and "\x00" not in outcome.reason


def test_refuses_without_isolation_unless_asked(monkeypatch):
    monkeypatch.setattr(sandbox_module, "available_kinds", lambda: ["none"])
    with pytest.raises(HarnessError, match="no working sandbox.*apt-get install -y bubblewrap.*--unsafe-no-sandbox"):
        open_sandbox(SandboxConfig())
    unsafe = open_sandbox(SandboxConfig(timeout_s=5, cgroups="off"), allow_unsafe=True)
    try:
        assert unsafe.kind == "none"
        assert unsafe.run(Job(program="def f():\n    return 3\n", tests="assert f() == 3\n")).passed
        assert not unsafe.run(job("import sys\nsys.exit(0)\n")).passed
    finally:
        unsafe.close()


def test_unshare_is_refused_for_an_ordinary_user(monkeypatch):
    """As an ordinary user `unshare` would leave the program the user's write access."""
    from harness.eval.sandbox import isolation

    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1000)
    assert "unshare" not in isolation.available_kinds()
    with pytest.raises(HarnessError, match="unshare sandbox is refused.*apt-get install -y bubblewrap"):
        open_sandbox(SandboxConfig(kind="unshare"))


def test_cgroups_required_is_refused_where_none_can_be_made(monkeypatch):
    from harness.eval.sandbox import cgroups

    monkeypatch.setattr(cgroups, "discover", lambda: (None, "no cgroup here"))
    with pytest.raises(HarnessError, match="cgroups is required but no cgroup can be made here: no cgroup here"):
        sandbox_module._cgroups(SandboxConfig(cgroups="required"))
