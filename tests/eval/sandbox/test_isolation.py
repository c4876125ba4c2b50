"""The launch command lines: namespaces, binds and privilege drop per isolation kind."""

from __future__ import annotations

import os

import pytest

from harness.errors import HarnessError
from harness.eval.sandbox import isolation


@pytest.fixture
def as_uid(monkeypatch):
    def _as(uid: int):
        monkeypatch.setattr(isolation.os, "geteuid", lambda: uid)

    return _as


def test_bwrap_as_user_unshares_everything(as_uid, tmp_path):
    as_uid(1000)
    launch = isolation.launch_for("bwrap", [str(tmp_path)], tmpfs_mb=8)
    argv = list(launch.prefix)
    assert "--unshare-all" in argv and "--cap-add" not in argv
    assert {"--die-with-parent", "--new-session", "--unshare-user", "--disable-userns"} <= set(argv)
    assert not launch.switch_uid and not launch.host_workdir
    for mount in ("/dev/shm", "/tmp"):  # private, size-capped
        at = argv.index(mount, argv.index("--dev"))
        assert argv[at - 5 : at + 1] == ["--size", str(8 << 20), "--perms", "1777", "--tmpfs", mount]
    # bwrap's own / and /dev are writable tmpfs without a size: read-only once set up
    assert argv[-6:-2] == ["--remount-ro", "/dev", "--remount-ro", "/"]


def test_bwrap_as_root_keeps_uid_separation(as_uid, tmp_path):
    as_uid(0)
    launch = isolation.launch_for("bwrap", [str(tmp_path)], tmpfs_mb=8)
    argv = list(launch.prefix)
    assert "--unshare-all" not in argv and "--unshare-user" not in argv
    assert {"--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and launch.switch_uid


def test_interpreter_binds_create_traversable_parents(tmp_path):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    argv = isolation._interpreter_binds([str(inner), str(tmp_path / "a"), "/usr/lib"])
    binds = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--ro-bind"]
    assert binds == [str(tmp_path / "a")]  # nested and system directories are not bound twice
    made = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--dir"]
    # "/" and the sandbox's own /tmp (a tmpfs mounted before the binds) are never re-made
    skip = {"/", isolation.SANDBOX_WORKDIR}
    assert made == [str(p) for p in reversed(tmp_path.parents) if str(p) not in skip] + [str(tmp_path)]
    assert all(argv[i - 2 : i] == ["--perms", "0755"] for i, arg in enumerate(argv) if arg == "--dir")


def test_unshare_and_none(as_uid):
    as_uid(0)
    root = isolation.launch_for("unshare", [], tmpfs_mb=8)
    assert {"--net", "--pid", "--mount", "--ipc", "--uts", "--kill-child"} <= set(root.prefix)
    assert root.switch_uid and root.private_mounts and not root.host_workdir
    assert isolation.launch_for("none", [], tmpfs_mb=8, switch_uid=False).switch_uid is False
    with pytest.raises(ValueError, match="unknown sandbox kind"):
        isolation.launch_for("docker", [], tmpfs_mb=8)


def test_unshare_is_refused_for_an_ordinary_user(as_uid):
    """A user namespace would map the program to the user: their files stay writable."""
    as_uid(1000)
    with pytest.raises(HarnessError, match="refused for an ordinary user.*apt-get install -y bubblewrap"):
        isolation.launch_for("unshare", [], tmpfs_mb=8)
    assert "unshare" not in isolation.available_kinds()


def test_available_kinds_end_with_none():
    kinds = isolation.available_kinds()
    assert kinds[-1] == "none" and set(kinds) <= set(isolation.KINDS)
    assert os.path.isabs(isolation.SANDBOX_WORKDIR)


def test_bwrap_binds_the_interpreter_after_the_private_tmp(as_uid, tmp_path):
    as_uid(0)
    argv = list(isolation.launch_for("bwrap", [str(tmp_path)], tmpfs_mb=8).prefix)
    tmpfs = argv.index("/tmp") - 1
    bind = argv.index(str(tmp_path))
    assert argv[tmpfs] == "--tmpfs" and tmpfs < bind  # else the private /tmp would hide it
    assert argv[-2:] == ["--chdir", "/tmp"]


def test_an_interpreter_under_tmp_runs_in_bwrap(tmp_path):
    """A project cloned into /tmp (its .venv there) must still evaluate: the sandbox's
    private /tmp used to hide the interpreter ("bwrap: execvp ...: No such file")."""
    import shutil
    import subprocess
    import sys

    from harness.eval.sandbox.config import SandboxConfig
    from harness.eval.sandbox.runner import Job, open_sandbox, probe

    if not shutil.which("bwrap"):
        pytest.skip("bwrap is not installed")
    base = os.path.realpath(sys.executable) if sys.prefix == sys.base_prefix else None
    base = base or os.path.join(sys.base_prefix, "bin", os.path.basename(sys.executable))
    if not str(tmp_path).startswith("/tmp/"):
        pytest.skip(f"pytest's tmp_path {tmp_path} is not under /tmp")
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    uid_base = SandboxConfig().uid_base
    if probe("bwrap", base, 64, uid_base, "auto") is not None:
        pytest.skip("bwrap cannot run this machine's base interpreter at all")
    assert probe("bwrap", python, 64, uid_base, "auto") is None
    box = open_sandbox(SandboxConfig(kind="bwrap", python=python, timeout_s=10, workers=1))
    try:
        job = Job(program="import sys\ndef prefix():\n    return sys.prefix\n", tests="assert prefix().startswith('/tmp/')\n")
        assert box.run(job).status == "passed"
    finally:
        box.close()
