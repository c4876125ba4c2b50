"""Packaged benchmark data: counts, splits and checksum verification."""

from __future__ import annotations

import pytest

from harness.data import benchmarks
from harness.errors import HarnessError


def test_counts_and_splits():
    assert len(benchmarks.humaneval()) == 164
    assert len(benchmarks.mbpp()) == 974 and len(benchmarks.mbpp(sanitized=True)) == 427
    sizes = {s: len(benchmarks.mbpp(s)) for s in benchmarks.MBPP_SPLITS}
    assert sizes == {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    assert [r["task_id"] for r in benchmarks.mbpp("prompt")][1:4] == [2, 3, 4]


def test_modified_file_is_refused(monkeypatch):
    monkeypatch.setitem(benchmarks.CHECKSUMS, "HumanEval.jsonl.gz", "0" * 64)
    benchmarks.humaneval.cache_clear()
    with pytest.raises(HarnessError, match="HumanEval.jsonl.gz has sha256"):
        benchmarks.humaneval()
    benchmarks.humaneval.cache_clear()


def test_unknown_split():
    with pytest.raises(HarnessError, match="unknown MBPP split 'dev'"):
        benchmarks.mbpp("dev")
