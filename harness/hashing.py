"""sha256 of a file, the one helper every module uses (manifests, checkpoints, locks, exports).

Streams in 1 MiB blocks so multi-GB shards and checkpoints never sit in memory;
`hashlib.file_digest` does the same but only exists from Python 3.11 and we support 3.10.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
