"""The sandbox against hostile programs: each must fail, leave the host untouched and stop in time.

Every test runs under each isolation kind that works here (`isolated` fixture: bubblewrap,
and the `unshare` fallback); kinds that cannot run are skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.eval import sandbox as sandbox_module
from harness.eval.sandbox import SandboxConfig, open_sandbox

SLACK_S = 4.0  # start-up and kill time allowed beyond the 5 s timeout, on a loaded machine


def run_timed(box, program: str):
    started = time.monotonic()
    outcome = box.run(program)
    elapsed = time.monotonic() - started
    assert elapsed < box.config.timeout_s + SLACK_S, f"took {elapsed:.1f} s"
    return outcome


def nobody_processes() -> int:
    if os.geteuid() != 0:
        return 0
    out = subprocess.run(["ps", "-u", "65534", "-o", "pid="], capture_output=True, text=True)
    return len(out.stdout.split())


def test_a_correct_program_passes_and_a_wrong_one_fails(isolated):
    assert isolated.run("def f(x):\n    return x + 1\nassert f(1) == 2\n").status == "passed"
    outcome = isolated.run("def f(x):\n    return x\nassert f(1) == 2\n")
    assert (outcome.status, outcome.reason) == ("failed", "AssertionError (line 3)")


def test_fork_bomb(isolated):
    before = nobody_processes()
    outcome = run_timed(isolated, "import os\nwhile True:\n    os.fork()\n")
    assert outcome.status in ("failed", "timeout")
    time.sleep(0.5)
    assert nobody_processes() <= before, "fork bomb processes survived the sandbox"


def test_infinite_loop_is_a_timeout(isolated):
    outcome = run_timed(isolated, "while True:\n    pass\n")
    assert outcome.status == "timeout"


def test_sleeping_child_that_left_the_session_is_killed_too(isolated, tmp_path):
    program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\ntime.sleep(1000)\n"
    before = nobody_processes()
    assert run_timed(isolated, program).status == "timeout"
    time.sleep(0.5)
    assert nobody_processes() <= before


def test_ten_gigabyte_allocation(isolated):
    outcome = run_timed(isolated, "block = bytearray(10 * 1024 ** 3)\nassert len(block) > 0\n")
    assert outcome.status == "failed" and "MemoryError" in outcome.reason


def test_deleting_a_file_outside_the_work_dir(isolated):
    # Under bwrap the directory is even world-writable: only the mount namespace protects it.
    # The unshare fallback sees the host file system, so there ordinary permissions protect it.
    directory = Path(tempfile.mkdtemp(prefix="harness-victim-"))
    try:
        if isolated.kind == "bwrap":
            directory.chmod(0o777)
        victim = directory / "precious.txt"
        victim.write_text("keep me")
        victim.chmod(0o666 if isolated.kind == "bwrap" else 0o644)
        program = f"import os\nos.remove({str(victim)!r})\nassert not os.path.exists({str(victim)!r})\n"
        outcome = run_timed(isolated, program)
        assert outcome.status == "failed"
        assert victim.read_text() == "keep me"
    finally:
        shutil.rmtree(directory)


def test_writing_into_the_interpreter_is_refused(isolated):
    program = "import os, sys\nopen(os.path.join(sys.prefix, 'planted.py'), 'w').write('x')\n"
    outcome = run_timed(isolated, program)
    assert outcome.status == "failed"
    assert not any(Path(p, "planted.py").exists() for p in {os.sys.prefix, os.sys.base_prefix})


def test_socket_to_a_host_listener(isolated):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        program = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'leak')\n"
        outcome = run_timed(isolated, program)
        assert outcome.status == "failed"
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
        f"print(found)\nassert {secret!r} in found\n"
    )
    outcome = run_timed(isolated, program)
    assert outcome.status == "failed" and outcome.reason.startswith("AssertionError")


def test_huge_file_write(isolated):
    free_before = shutil.disk_usage(tempfile.gettempdir()).free
    program = "chunk = b'0' * (1 << 20)\nwith open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(chunk)\n"
    outcome = run_timed(isolated, program)
    assert outcome.status == "failed"
    assert "File too large" in outcome.reason or "file size limit" in outcome.reason
    assert shutil.disk_usage(tempfile.gettempdir()).free > free_before - (512 << 20)


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_early_exit_before_the_asserts(isolated, exit_call):
    program = f"def add(a, b):\n    return a - b\n{exit_call}\nassert add(2, 3) == 5\n"
    outcome = run_timed(isolated, program)
    assert (outcome.status, outcome.reason) == ("failed", "exited with status 0 before the tests finished")


def test_printing_a_fake_nonce_and_exiting(isolated):
    program = "import os, secrets\nprint(secrets.token_hex(16), flush=True)\nos._exit(0)\nassert False\n"
    assert run_timed(isolated, program).status == "failed"


def test_killing_the_parent(isolated):
    program = (
        "import os, signal\n"
        f"for pid in (os.getppid(), {os.getpid()}, 1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
        "os.kill(-1, signal.SIGKILL)\n"
        "assert False, 'still here'\n"
    )
    outcome = run_timed(isolated, program)
    assert outcome.status in ("failed", "error")
    assert isolated.run("assert 1 + 1 == 2\n").status == "passed"  # the harness is unharmed


def test_output_is_capped_and_the_nonce_still_found(isolated):
    outcome = run_timed(isolated, "import sys\nfor _ in range(5000):\n    sys.stdout.write('x' * 1000 + '\\n')\n")
    assert outcome.status == "passed"


def test_parallel_runs_keep_order(isolated):
    programs = [f"assert {i} % 2 == 0\n" for i in range(6)]
    statuses = [o.status for o in isolated.run_many(programs)]
    assert statuses == ["passed", "failed"] * 3


def test_refuses_without_isolation_unless_asked(monkeypatch):
    monkeypatch.setattr(sandbox_module, "available_kinds", lambda: ["none"])
    with pytest.raises(HarnessError, match="no working sandbox.*--unsafe-no-sandbox"):
        open_sandbox(SandboxConfig())
    unsafe = open_sandbox(SandboxConfig(timeout_s=5), allow_unsafe=True)
    assert unsafe.kind == "none"
    assert unsafe.run("assert sum([1, 2]) == 3\n").status == "passed"
    assert unsafe.run("import sys\nsys.exit(0)\nassert False\n").status == "failed"
