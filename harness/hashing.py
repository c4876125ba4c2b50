"""Hashing, the one module for it: sha256 of a file, of a directory, of JSON-able values.

Every content address in the harness (recipe hashes, data manifests, stage-ledger inputs,
checkpoint checksums, container contexts, exports) comes from here, so two modules can
never disagree on how the same thing hashes.

Files stream in 1 MiB blocks so multi-GB shards and checkpoints never sit in memory;
`hashlib.file_digest` does the same but only exists from Python 3.11 and we support 3.10.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value) -> str:
    """The serialisation that is hashed: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_json(value) -> str:
    """sha256 of `canonical_json(value)`: key order and formatting do not change it."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def sha256_parts(*parts: object) -> str:
    """sha256 of several values at once (a stage's inputs); values JSON cannot encode
    (paths, ...) hash by their `str`."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def sha256_named(items: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (name, bytes) pairs, length-prefixed so that moving bytes between names
    changes the hash."""
    digest = hashlib.sha256()
    for name, data in items:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def sha256_directory(path: Path) -> str:
    """sha256 over the sorted relative file names and the sha256 of each file's contents."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """sha256 hex digest of raw bytes (a file already read, a text's encoding)."""
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """sha256 hex digest of a text's UTF-8 encoding (lone surrogates kept as they are)."""
    return sha256_bytes(text.encode("utf-8", "surrogatepass"))


def seed_bytes(text: str) -> bytes:
    """32 bytes derived from a text: the seed material of a named random stream."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def sha256_stream():
    """An incremental sha256 (`update(bytes)`, `hexdigest()`), for data written in pieces."""
    return hashlib.sha256()


def short_key(text: str) -> bytes:
    """A 16-byte key of a text for de-duplication in memory (blake2b: faster, not a content address)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
