"""The held-out rows the analyses score: one row per validation document, from its first token.

Per-position loss asks how loss changes with the context a position has, so position i of a
row must have exactly i tokens of its own document before it. The loader's validation
windows start at multiples of S in the concatenated stream and so begin mid-document, mix
documents and make rows of one long document dependent. Here each row is the first S + extra
tokens of one validation document (documents shorter than that are left out), so a row is
the independent unit: bootstrap intervals resample rows = documents. Documents are taken in
shard order, at most `max_docs`, spread evenly over the eligible ones; the choice depends
only on the data, so every arm and run scores the same rows.
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError


def document_spans(tokens: np.ndarray, eos_id: int) -> list[tuple[int, int]]:
    """(start, end) of each document in a shard: the tokens between EOS separators (each
    document is written followed by one EOS)."""
    ends = np.flatnonzero(tokens == eos_id)
    starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else np.array([0])
    if not len(ends):
        ends = np.array([len(tokens)])
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b > a]


def document_rows(prepared, length: int, max_docs: int, split: str = "val") -> tuple[np.ndarray, list[str]]:
    """int64 [docs, length]: the first `length` tokens of up to `max_docs` documents of the
    split that have at least that many, and an id per row (`<shard>:<start>`)."""
    eligible: list[tuple[np.ndarray, str]] = []
    for path, n in prepared.shards(split):
        tokens = np.memmap(path, dtype=prepared.dtype, mode="r", shape=(n,))
        for start, end in document_spans(np.asarray(tokens), prepared.eos_id):
            if end - start >= length:
                eligible.append((np.asarray(tokens[start : start + length], dtype=np.int64), f"{path.name}:{start}"))
    if not eligible:
        raise HarnessError(
            f"no {split} document has {length} tokens, so there are no held-out rows for per-position analyses",
            fix="use a corpus with longer documents, a larger data.val_fraction, or a shorter data.seq_len",
        )
    count = min(max_docs, len(eligible))
    picks = np.unique(np.floor(np.linspace(0, len(eligible) - 1, count) + 0.5).astype(np.int64))
    return np.stack([eligible[i][0] for i in picks]), [eligible[i][1] for i in picks]
