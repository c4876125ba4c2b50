"""Held-out rows: one per document, from the document's first token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.eval.analyses.heldout import document_rows, document_spans

EOS = 0


class Shards:
    """What document_rows reads of a PreparedData: shards of a split, dtype, eos id."""

    def __init__(self, tmp_path: Path, documents: list[list[int]]):
        tokens = np.array([t for doc in documents for t in [*doc, EOS]], dtype=np.uint16)
        self.path = tmp_path / "val-00000.bin"
        tokens.tofile(self.path)
        self.n, self.dtype, self.eos_id = len(tokens), np.dtype(np.uint16), EOS

    def shards(self, split):
        return [(self.path, self.n)]


def test_document_spans_split_at_every_eos():
    tokens = np.array([5, 6, EOS, 7, EOS, EOS, 8, 9, 9, EOS])
    assert document_spans(tokens, EOS) == [(0, 2), (3, 4), (6, 9)]


def test_each_row_is_the_start_of_one_long_enough_document(tmp_path):
    docs = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10, 11], [12, 13, 14, 15, 16, 17]]
    rows, ids = document_rows(Shards(tmp_path, docs), length=4, max_docs=10)
    assert rows.tolist() == [[1, 2, 3, 4], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert ids == ["val-00000.bin:0", "val-00000.bin:9", "val-00000.bin:14"]


def test_at_most_max_docs_spread_over_the_eligible_ones(tmp_path):
    docs = [[i + 1] * 3 for i in range(9)]
    rows, _ = document_rows(Shards(tmp_path, docs), length=3, max_docs=3)
    assert rows[:, 0].tolist() == [1, 5, 9]


def test_no_long_enough_document_is_one_clear_error(tmp_path):
    with pytest.raises(HarnessError, match="no val document has 9 tokens"):
        document_rows(Shards(tmp_path, [[1, 2], [3, 4, 5]]), length=9, max_docs=4)
