"""Atomic writes: the target holds the old bytes or the new ones, nothing is left behind
when a write fails, and a published folder's files are on disk before its name is."""

from __future__ import annotations

import os

import pytest

from harness import atomic
from harness.atomic import atomic_write_text, publish_dir


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["state.json"]


def test_a_failed_write_keeps_the_old_bytes(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_text("old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]


def test_a_folder_is_published_after_everything_in_it_is_synced(tmp_path, monkeypatch):
    tmp = tmp_path / ".tmp-data"
    (tmp / "tokenizer").mkdir(parents=True)
    for name in ("tokenizer/tokenizer.json", "train-00000.bin", "manifest.json"):
        (tmp / name).write_text(name)
    synced, events = set(), []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        synced.add(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def rename(src, dst):
        events.append(("rename", set(synced)))
        real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "rename", rename)
    publish_dir(tmp, tmp_path / "data")
    (_, before), = events
    want = {str(tmp / n) for n in ("tokenizer/tokenizer.json", "train-00000.bin", "manifest.json", "tokenizer", "")}
    assert {p.rstrip("/") for p in want} <= before  # every file and folder, before the rename
    assert str(tmp_path) in synced  # and the parent after it
    assert (tmp_path / "data" / "manifest.json").read_text() == "manifest.json" and not tmp.exists()
