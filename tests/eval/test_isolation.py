"""The launch command lines: namespaces, binds and privilege drop per isolation kind."""

from __future__ import annotations

import os

import pytest

from harness.eval import isolation


@pytest.fixture
def as_uid(monkeypatch):
    def _as(uid: int):
        monkeypatch.setattr(isolation.os, "geteuid", lambda: uid)

    return _as


def test_bwrap_as_user_unshares_everything(as_uid, tmp_path):
    as_uid(1000)
    launch = isolation.launch_for("bwrap", [str(tmp_path)], uid=65534, tmpfs_mb=8)
    argv = list(launch.prefix)
    assert "--unshare-all" in argv and "--cap-add" not in argv
    assert {"--die-with-parent", "--new-session"} <= set(argv)
    assert launch.drop_to_uid is None and not launch.host_workdir
    start = argv.index("--size")
    assert argv[start : start + 6] == ["--size", str(8 << 20), "--perms", "1777", "--tmpfs", "/tmp"]


def test_bwrap_as_root_keeps_uid_separation(as_uid, tmp_path):
    as_uid(0)
    launch = isolation.launch_for("bwrap", [str(tmp_path)], uid=65534, tmpfs_mb=8)
    argv = list(launch.prefix)
    assert "--unshare-all" not in argv and "--unshare-user" not in argv
    assert {"--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and launch.drop_to_uid == 65534


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
    as_uid(1000)
    user = isolation.launch_for("unshare", [], uid=65534, tmpfs_mb=8)
    assert user.prefix[:3] == ("unshare", "--user", "--map-root-user") and "--net" in user.prefix
    as_uid(0)
    root = isolation.launch_for("unshare", [], uid=65534, tmpfs_mb=8)
    assert "--user" not in root.prefix and root.drop_to_uid == 65534 and root.host_workdir
    assert isolation.launch_for("none", [], uid=65534, tmpfs_mb=8, drop=False).drop_to_uid is None
    with pytest.raises(ValueError, match="unknown sandbox kind"):
        isolation.launch_for("docker", [], uid=65534, tmpfs_mb=8)


def test_available_kinds_end_with_none():
    kinds = isolation.available_kinds()
    assert kinds[-1] == "none" and set(kinds) <= set(isolation.KINDS)
    assert os.path.isabs(isolation.SANDBOX_WORKDIR)


def test_bwrap_binds_the_interpreter_after_the_private_tmp(as_uid, tmp_path):
    as_uid(0)
    argv = list(isolation.launch_for("bwrap", [str(tmp_path)], uid=65534, tmpfs_mb=8).prefix)
    tmpfs = argv.index("--tmpfs")
    bind = argv.index(str(tmp_path))
    assert argv[tmpfs + 1] == "/tmp" and tmpfs < bind  # else the private /tmp would hide it
    assert argv[-2:] == ["--chdir", "/tmp"]


def test_an_interpreter_under_tmp_runs_in_bwrap(tmp_path):
    """A project cloned into /tmp (its .venv there) must still evaluate: the sandbox's
    private /tmp used to hide the interpreter ("bwrap: execvp ...: No such file")."""
    import shutil
    import subprocess
    import sys

    from harness.eval.sandbox import SandboxConfig, open_sandbox, probe

    if not shutil.which("bwrap"):
        pytest.skip("bwrap is not installed")
    base = os.path.realpath(sys.executable) if sys.prefix == sys.base_prefix else None
    base = base or os.path.join(sys.base_prefix, "bin", os.path.basename(sys.executable))
    if not str(tmp_path).startswith("/tmp/"):
        pytest.skip(f"pytest's tmp_path {tmp_path} is not under /tmp")
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    if probe("bwrap", base, 65534, 64) is not None:
        pytest.skip("bwrap cannot run this machine's base interpreter at all")
    assert probe("bwrap", python, 65534, 64) is None
    box = open_sandbox(SandboxConfig(kind="bwrap", python=python, timeout_s=10, workers=1))
    assert box.run("import sys\nassert sys.prefix.startswith('/tmp/')\n").status == "passed"
