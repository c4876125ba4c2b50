"""What every corpus source yields: documents (id and text), the statistics of what a pass
skipped, and the interface a source implements (`sources.py` and its backends)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from harness.hashing import sha256_file


@dataclass(frozen=True)
class Document:
    id: str  # where it came from: a relative path, "file:line", or "split[row]"
    text: str


@dataclass
class ReadStats:
    """What a pass over the source skipped, and why (reported in the manifest)."""

    non_utf8: list[str] = field(default_factory=list)
    empty: int = 0


# How a file's sha256 is found: hashing it, or (harness.data.prepare) a record trusted by size and mtime.
Digest = Callable[[Path], str]


class CorpusSource(Protocol):
    def identity(self, digest: Digest = sha256_file) -> dict:
        """Everything that pins the content (file hashes, revision); hashed into the cache key."""

    def documents(self, stats: ReadStats) -> Iterator[Document]:
        """The documents, in the same order on every call; skips go into `stats`."""
