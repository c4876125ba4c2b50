"""The benchmark problems shipped as package data (HumanEval, MBPP full and sanitized),
read offline and checked against their recorded sha256 before use."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources

from harness.errors import HarnessError
from harness.hashing import sha256_bytes

# sha256 of the compressed files, as recorded in data/PROVENANCE.md.
CHECKSUMS = {
    "HumanEval.jsonl.gz": "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
    "mbpp.jsonl.gz": "2809de2a637dffecb4bd58128bcfe1250d0a335779b019956b7f3c28f646e4a6",
    "sanitized-mbpp.json.gz": "0eb858cb58bf7086e5d0cfb944d2e75155936dd84d8235d887523637f7af4890",
}
# The code benchmarks a run is scored on, as tables and figures name them.
TASK_NAMES = {"humaneval": "HumanEval", "mbpp": "MBPP"}
# MBPP splits by task_id (upstream README): few-shot prompts, test, validation, train.
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}


def _verified_text(name: str) -> str:
    blob = resources.files("harness.data").joinpath("benchmark_files", name).read_bytes()
    digest = sha256_bytes(blob)
    if digest != CHECKSUMS[name]:
        raise HarnessError(
            f"benchmark file {name} has sha256 {digest[:12]}..., expected {CHECKSUMS[name][:12]}...",
            fix="reinstall mtp-harness; the packaged benchmark data was modified",
        )
    return gzip.decompress(blob).decode("utf-8")


@lru_cache(maxsize=None)
def humaneval() -> tuple[dict, ...]:
    """164 problems: task_id, prompt, canonical_solution, test, entry_point."""
    return tuple(json.loads(line) for line in _verified_text("HumanEval.jsonl.gz").splitlines() if line)


@lru_cache(maxsize=None)
def mbpp(split: str | None = None, sanitized: bool = False) -> tuple[dict, ...]:
    """MBPP problems, all (split=None) or one split by task_id range."""
    if sanitized:
        rows = json.loads(_verified_text("sanitized-mbpp.json.gz"))
    else:
        rows = [json.loads(line) for line in _verified_text("mbpp.jsonl.gz").splitlines() if line]
    if split is None:
        return tuple(rows)
    if split not in MBPP_SPLITS:
        raise HarnessError(f"unknown MBPP split {split!r}; allowed: {', '.join(MBPP_SPLITS)}")
    lo, hi = MBPP_SPLITS[split]
    return tuple(r for r in rows if lo <= r["task_id"] <= hi)
