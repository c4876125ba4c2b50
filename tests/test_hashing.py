"""The one hashing module against hashlib directly, and the invariances it promises."""

from __future__ import annotations

import hashlib
import os

from harness.hashing import sha256_directory, sha256_file, sha256_json, sha256_named


def test_a_file_hashes_as_hashlib_hashes_its_bytes(tmp_path):
    data = os.urandom((1 << 20) + 12345)  # crosses the 1 MiB block boundary
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_json_ignores_key_order_and_formatting_but_not_values():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
    assert sha256_json({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})


def test_named_bytes_and_directories_notice_moved_bytes(tmp_path):
    assert sha256_named([("a", b"xy"), ("b", b"")]) != sha256_named([("a", b"x"), ("b", b"y")])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one").write_text("1")
    before = sha256_directory(tmp_path / "d")
    (tmp_path / "d" / "one").rename(tmp_path / "d" / "two")
    assert sha256_directory(tmp_path / "d") != before
