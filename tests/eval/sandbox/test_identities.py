"""Sandbox uids held across processes: two harness processes never run programs as the same uid.

The end-to-end case (a thread hog in one `harness eval score` beside a correct program in
another) is in test_sandbox_neighbours.py; these pin the reservation itself. Only root
switches uids, so as an ordinary user they are skipped (each program has a user namespace).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.eval.sandbox import identities

ROOT = Path(__file__).resolve().parents[3]
BASE = 1_950_000_000  # away from the default uid_base, so running sandboxes do not shift the figures
HOLDER = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from harness.eval.sandbox import identities
held = identities.reserve({BASE}, 3)
print(*held.uids, flush=True)
sys.stdin.read()  # hold until the test closes our stdin (or kills us)
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root switches uids; an ordinary user's programs get user namespaces")


def holder() -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, [int(uid) for uid in proc.stdout.readline().split()]


def test_another_process_gets_other_uids_while_one_holds_them():
    proc, theirs = holder()
    try:
        ours = identities.reserve(BASE, 3)
        try:
            assert len(theirs) == 3 and not set(theirs) & set(ours.uids)
        finally:
            ours.release()
    finally:
        proc.stdin.close()
        proc.wait()
    again = identities.reserve(BASE, 3)
    assert again.uids == theirs  # freed when the holder ended
    again.release()


def test_a_killed_holder_leaves_its_uids_free():
    proc, theirs = holder()
    proc.kill()
    proc.wait()
    again = identities.reserve(BASE, 3)
    assert again.uids == theirs
    again.release()


def test_a_uid_a_live_process_runs_as_is_passed_over():
    """A program that outlived its harness (unsafe mode) still counts against its uid's RLIMIT_NPROC."""
    sleeper = subprocess.Popen(["setpriv", f"--reuid={BASE}", f"--regid={BASE}", "--clear-groups", "sleep", "60"])
    try:
        for _ in range(100):  # setpriv has switched once its uid shows
            if BASE in identities._running_uids():
                break
            time.sleep(0.05)
        held = identities.reserve(BASE, 1)
        assert held.uids == [BASE + 1]
        held.release()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_directory_others_may_write_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "uids"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setattr(identities, "LOCK_DIRS", (shared,))
    with pytest.raises(HarnessError, match="not a directory only this user may write"):
        identities.reserve(BASE, 1)
