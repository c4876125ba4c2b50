"""Token shards: documents tokenised in parallel into flat uint16/uint32 files, EOS after
each document, cut into shards at document ends, each with its token count and sha256."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from harness.data.tokenizer import encode_batches
from harness.errors import HarnessError
from harness.hashing import sha256_stream

# Texts per parallel encode call: enough to keep every core busy, few enough for a smooth
# progress bar and bounded memory on a cluster-sized corpus.
BATCH_DOCS = 256
UINT16_VOCAB = 1 << 16
UINT32_VOCAB = 1 << 32


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds every id (uint16 halves disk and page cache)."""
    if vocab_size > UINT32_VOCAB:
        raise HarnessError(
            f"model.vocab_size {vocab_size} does not fit the uint32 token shards (at most {UINT32_VOCAB})",
            fix="lower model.vocab_size",
        )
    return np.dtype(np.uint16 if vocab_size <= UINT16_VOCAB else np.uint32)


class ShardWriter:
    """Appends token arrays to `<split>-NNNNN.bin` files, hashing as it writes."""

    def __init__(self, out_dir: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.out_dir, self.split, self.dtype, self.limit = out_dir, split, dtype, shard_tokens
        self.shards: list[dict] = []
        self.documents = 0
        self._handle = None

    def add(self, ids: np.ndarray) -> None:
        """One document's tokens (EOS included); a new shard starts once the current one is full."""
        if self._handle is None or self._count >= self.limit:
            self._open()
        blob = ids.astype(self.dtype, copy=False).tobytes()
        self._handle.write(blob)
        self._digest.update(blob)
        self._count += len(ids)
        self.documents += 1

    def _open(self) -> None:
        self._finish()
        name = f"{self.split}-{len(self.shards):05d}.bin"
        self._handle = open(self.out_dir / name, "wb")
        self._name, self._count, self._digest = name, 0, sha256_stream()

    def _finish(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self.shards.append({"file": self._name, "tokens": self._count, "sha256": self._digest.hexdigest()})
            self._handle = None

    def close(self) -> dict:
        self._finish()
        return {
            "documents": self.documents,
            "tokens": sum(s["tokens"] for s in self.shards),
            "shards": self.shards,
        }


def write_shards(
    tokenizer,
    documents: Iterable[tuple[str, str]],
    writers: dict[str, ShardWriter],
    eos_id: int,
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Tokenise (split, text) pairs in batches and route each document to its split's writer."""
    eos = np.array([eos_id], dtype=np.int64)
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        for (split, _), ids in zip(batch, encode_batches(tokenizer, [text for _, text in batch])):
            writers[split].add(np.concatenate([np.asarray(ids, dtype=np.int64), eos]))
        advance(len(batch))
        batch.clear()

    for item in documents:
        batch.append(item)
        if len(batch) >= BATCH_DOCS:
            flush()
    if batch:
        flush()
