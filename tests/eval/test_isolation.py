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
    assert made == [str(p) for p in reversed(tmp_path.parents) if str(p) != "/"] + [str(tmp_path)]
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
