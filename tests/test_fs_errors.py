"""A filesystem that refuses a write is one line: the path, what the filesystem said, the fix."""

from __future__ import annotations

import errno

import pytest

from harness.errors import HarnessError
from harness.fs_errors import RunDirError, explain, filesystem_error, is_under, writing


@pytest.mark.parametrize("code, says, fix", [
    (errno.EROFS, "is on a read-only file system", "remount it read-write"),
    (errno.EACCES, "this user may not", "chown/chmod"),
    (errno.EPERM, "this user may not", "chown/chmod"),
    (errno.ENOSPC, "no space left on", "free space there"),
    (errno.EDQUOT, "disk quota exceeded on", "raise the quota"),
])
def test_each_refusal_is_one_line_with_path_and_fix(code, says, fix, tmp_path):
    error = explain(OSError(code, "refused", str(tmp_path / "run" / "stages.json")), stage="train")
    assert isinstance(error, HarnessError) and "\n" not in str(error)
    assert says in str(error) and fix in str(error) and "stages.json" in str(error) and "the train stage" in str(error)


def test_writing_turns_refusals_into_one_line_and_lets_other_errors_through(tmp_path):
    with pytest.raises(RunDirError, match="read-only"), writing(tmp_path):
        raise OSError(errno.EROFS, "Read-only file system")  # no filename: the folder is named
    with pytest.raises(FileNotFoundError), writing(tmp_path):
        raise FileNotFoundError(errno.ENOENT, "gone", str(tmp_path / "x"))


def test_a_refusal_is_found_inside_what_wraps_it_and_placed(tmp_path):
    try:
        try:
            raise PermissionError(errno.EACCES, "denied", str(tmp_path / "run" / "track" / "state.json"))
        except OSError as inner:
            raise RuntimeError("the store's client failed") from inner
    except RuntimeError as outer:
        found = filesystem_error(outer)
    assert found is not None and is_under(found, tmp_path / "run") and not is_under(found, tmp_path / "store")
    assert filesystem_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) is None
