"""Decontamination: drop training documents that share a long n-gram with a benchmark.

Text is normalised to the words of code (identifiers, keywords, numbers, words inside
strings and comments; punctuation and layout ignored), and n-grams of
13 such words are compared, as GPT-3 (Brown et al. 2020, App. C) does for text. Keeping
punctuation as tokens was tried and rejected: on the standard library it dropped 15 files
for idioms such as `for j in range(i + 1, len(` or lists like `[0, 1, 2, 3, 4, 5,`, none a
leak. N-grams made only of numbers (`0 1 2 ... 12`) are ignored for the same reason.
Every HumanEval prompt+solution and test, and every MBPP problem (all splits, full and
sanitized: description, code, tests, setup) contributes n-grams. A document sharing any
one of them is dropped and reported with the task ids it matched and the first shared
n-gram, so a reader can judge whether the match was a real leak.

The n-grams are compared as 64-bit polynomial hashes computed with numpy over integer token
ids (a Python loop over tuples was ~5x slower on the 12 MB standard library); a hash hit is
confirmed against the stored n-gram, so a hash collision cannot drop a document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator

import numpy as np

from harness.data.config import Decontamination

_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: the polynomial's base
_MAX_IDS_SHOWN = 20


def code_words(text: str) -> list[str]:
    return _WORD.findall(text)


def benchmark_texts(names: list[str]) -> Iterator[tuple[str, str]]:
    """(task id, text) for every prompt, solution and test of the named benchmarks."""
    from harness.data import benchmarks

    if "humaneval" in names:
        for row in benchmarks.humaneval():
            yield row["task_id"], row["prompt"] + row["canonical_solution"]
            yield row["task_id"], row["test"]
    if "mbpp" in names:
        for row in benchmarks.mbpp():
            task = f"mbpp/{row['task_id']}"
            yield task, row["text"]
            yield task, row["code"]
            yield task, "\n".join([row.get("test_setup_code", ""), *row["test_list"]])
            yield task, "\n".join(row.get("challenge_test_list") or [])
        for row in benchmarks.mbpp(sanitized=True):
            task = f"mbpp/{row['task_id']}"
            yield task, row["prompt"]
            yield task, row["code"]
            yield task, "\n".join([*row.get("test_imports", []), *row["test_list"]])


def _hashes(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n-gram of `ids` made only of known tokens (id >= 0), and their starts."""
    count = len(ids) - n + 1
    if count <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    unknown = np.concatenate([[0], np.cumsum(ids < 0)])
    starts = np.flatnonzero(unknown[n:] - unknown[:-n] == 0)
    values = ids.astype(np.uint64)
    total = np.zeros(count, np.uint64)
    with np.errstate(over="ignore"):  # arithmetic modulo 2^64 is the point
        for j in range(n):
            total = total * _BASE + values[j : j + count]
    return total[starts], starts


@dataclass
class DecontaminationReport:
    settings: dict
    documents_checked: int = 0
    dropped: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts for the manifest: documents dropped, per benchmark and in all."""
        per_benchmark: dict[str, int] = {}
        for item in self.dropped:
            for bench in sorted({_benchmark_of(t) for t in item["tasks"]}):
                per_benchmark[bench] = per_benchmark.get(bench, 0) + 1
        return {
            **self.settings,
            "documents_checked": self.documents_checked,
            "documents_dropped": len(self.dropped),
            "dropped_by_benchmark": per_benchmark,
        }

    def to_json(self) -> dict:
        return {**self.summary(), "dropped": self.dropped}


def _benchmark_of(task_id: str) -> str:
    return "mbpp" if task_id.startswith("mbpp/") else "humaneval"


@dataclass(frozen=True)
class _Index:
    vocab: dict[str, int]  # every word seen in the benchmarks
    grams: dict[int, tuple[tuple[int, ...], set[str]]]  # hash -> (n-gram ids, task ids)
    known: np.ndarray  # the hashes, sorted, for binary search


@lru_cache(maxsize=4)
def _benchmark_index(ngram: int, names: tuple[str, ...]) -> _Index:
    """Built once per process (about a second): a study prepares several arms in one process."""
    vocab: dict[str, int] = {}
    grams: dict[int, tuple[tuple[int, ...], set[str]]] = {}
    for task, text in benchmark_texts(list(names)):
        words = code_words(text)
        ids = np.array([vocab.setdefault(w, len(vocab)) for w in words], dtype=np.int64)
        hashes, starts = _hashes(ids, ngram)
        wordy = np.concatenate([[0], np.cumsum([not w.isdigit() for w in words])]).astype(np.int64)
        for value, start in zip(hashes.tolist(), starts.tolist()):
            if wordy[start + ngram] == wordy[start]:
                continue  # numbers only: a counting sequence, not a leak
            gram = tuple(ids[start : start + ngram].tolist())
            grams.setdefault(value, (gram, set()))[1].add(task)
    return _Index(vocab, grams, np.array(sorted(grams), dtype=np.uint64))


class Decontaminator:
    """Checks documents against the packaged (checksum-verified) benchmark files."""

    def __init__(self, cfg: Decontamination):
        self.cfg = cfg
        self.report = DecontaminationReport(cfg.model_dump(mode="json"))
        if cfg.enabled:
            index = _benchmark_index(cfg.ngram, tuple(sorted(set(cfg.benchmarks))))
            self.vocab, self.grams, self.known = index.vocab, index.grams, index.known

    def keep(self, doc_id: str, text: str) -> bool:
        """False (and the reason recorded) when the document shares an n-gram with a benchmark."""
        if not self.cfg.enabled:
            return True
        self.report.documents_checked += 1
        tokens = code_words(text)
        ids = np.array([self.vocab.get(t, -1) for t in tokens], dtype=np.int64)
        hashes, starts = _hashes(ids, self.cfg.ngram)
        # np.isin hashes both arrays on every call (~0.1 s per document); a binary search
        # in the sorted benchmark hashes costs microseconds.
        at = np.minimum(np.searchsorted(self.known, hashes), max(len(self.known) - 1, 0))
        hits = np.flatnonzero(self.known[at] == hashes) if len(self.known) else np.empty(0, np.int64)
        tasks: set[str] = set()
        example = None
        for i in hits.tolist():
            gram, owners = self.grams[int(hashes[i])]
            start = int(starts[i])
            if tuple(ids[start : start + self.cfg.ngram].tolist()) == gram:
                tasks |= owners
                example = example or " ".join(tokens[start : start + self.cfg.ngram])
        if not tasks:
            return True
        ordered = sorted(tasks)
        self.report.dropped.append(
            {"document": doc_id, "tasks": ordered[:_MAX_IDS_SHOWN], "n_tasks": len(ordered), "example": example}
        )
        return False
