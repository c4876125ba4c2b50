"""From completions to per-sample outcomes and pass@k: one path for models, files and references.

Every completion, whether generated through lm-eval, read from a samples file made
elsewhere (vLLM, human-eval's format) or taken from a canonical solution, becomes a job
(`programs.py`), runs in the sandbox, and gives one row:
`{task_id, sample, completion, status, reason}`. Rows are written as JSONL so that two
models can be compared problem by problem (paired statistics).

A samples file is read twice and never held in memory: a first pass checks every line (one
error naming file:line, before any program runs) and counts; the second builds programs as
workers free up. Rows are appended in sample order as verdicts arrive, so a scoring that was
killed resumes where it stopped (the rows file is the record; a row of other samples is
refused). Memory grows with the number of problems, and on a resume with a 16-byte digest
per row already written; never with the completions (`benchmarks/bench_eval.py`: about
100 MB for a 100k-line file).
"""

from __future__ import annotations

import collections
import json
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from harness.errors import HarnessError
from harness.eval.benchmarks import programs
from harness.eval.benchmarks.passk import mean_pass_at_k
from harness.eval.sandbox.runner import STATUSES, Sandbox, open_sandbox
from harness.hashing import short_key

ROW_FIELDS = ("task_id", "sample", "completion", "status", "reason")
DEFAULT_KS = (1, 10, 100)
MAX_LINE_BYTES = 16 << 20  # one sample line; longer is refused, not read into memory

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


def execute_iter(task: str, samples: Iterable[tuple], sandbox: Sandbox) -> Iterator[dict]:
    """Rows for (task_id, sample_index, completion) triples, in order; jobs built lazily."""
    table = programs.problems(task)
    queued: collections.deque = collections.deque()

    def jobs():
        for sample in samples:
            queued.append(sample)
            yield programs.build_job(task, table[sample[0]], sample[2])

    for outcome in sandbox.run_many(jobs()):
        tid, index, completion = queued.popleft()
        yield {"task_id": tid, "sample": index, "completion": completion, "status": outcome.status,
               "reason": outcome.reason}  # fmt: skip


def execute(task: str, samples: Sequence[tuple], sandbox: Sandbox) -> list[dict]:
    return list(execute_iter(task, samples, sandbox))


class Tally:
    """Per-problem (samples, passed) and status counts: all a summary needs."""

    def __init__(self) -> None:
        self.per_problem: dict = collections.defaultdict(lambda: [0, 0])
        self.statuses: collections.Counter = collections.Counter()

    def add(self, row: dict) -> None:
        counts = self.per_problem[row["task_id"]]
        counts[0] += 1
        counts[1] += row["status"] == "passed"
        self.statuses[row["status"]] += 1

    def summary(self, ks: Sequence[int]) -> dict:
        """pass@k per k (where every problem has at least k samples) and outcome counts."""
        per_k = mean_pass_at_k(map(tuple, self.per_problem.values()), ks)
        summary = {f"pass_at_{k}": v for k, v in per_k.items()}
        summary.update(problems=len(self.per_problem), samples=sum(self.statuses.values()))
        summary.update({status: self.statuses.get(status, 0) for status in STATUSES})
        return summary


def summarize(rows: Iterable[dict], ks: Sequence[int] = DEFAULT_KS) -> dict:
    tally = Tally()
    for row in rows:
        tally.add(row)
    return tally.summary(ks)


def write_rows(path: Path, rows: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps({key: row[key] for key in ROW_FIELDS}) + "\n")
    return path


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of non-blank lines; only '\\n' ends a line (JSON allows U+2028)."""
    if not path.is_file():
        raise HarnessError(f"samples file {path} does not exist")
    with path.open("rb") as handle:
        number = 0
        while line := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) > MAX_LINE_BYTES:
                raise HarnessError(f"{path}:{number}: line longer than {MAX_LINE_BYTES >> 20} MB")
            if line.strip():
                yield number, line


def _sample(path: Path, number: int, line: bytes, task: str) -> tuple:
    """(task id, completion) of one line, or a HarnessError naming file:line and the fault."""
    where = f"{path}:{number}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{where}: not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})",
                           fix="re-encode the file as UTF-8") from None  # fmt: skip
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{where}: not JSON ({exc.msg} at column {exc.colno})",
                           fix='write one {"task_id": ..., "completion": "..."} object per line') from None  # fmt: skip
    if not isinstance(record, dict) or "task_id" not in record or "completion" not in record:
        raise HarnessError(f"{where}: not a sample (an object with task_id and completion)",
                           fix='write one {"task_id": ..., "completion": "..."} object per line')  # fmt: skip
    if not isinstance(record["completion"], str):
        raise HarnessError(f"{where}: completion must be a string, not {type(record['completion']).__name__}")
    try:
        return programs.task_id_of(task, record["task_id"]), record["completion"]
    except HarnessError as exc:
        raise HarnessError(f"{where}: {exc.problem}", fix=exc.fix) from None


def iter_samples(path: Path, task: str) -> Iterator[tuple]:
    """human-eval's sample format: one JSON object per line with task_id and completion.
    Lines of the same task_id are that problem's samples, numbered in file order."""
    seen: collections.Counter = collections.Counter()
    for number, line in _lines(path):
        tid, completion = _sample(path, number, line, task)
        yield tid, seen[tid], completion
        seen[tid] += 1


def _digest(completion: str) -> bytes:
    return short_key(completion)


def _finished(out: Path, tally: Tally) -> dict:
    """Rows a killed scoring already wrote: (task_id, sample) -> digest of its completion.
    A last line that the kill cut short is dropped from the file."""
    done: dict = {}
    if not out.exists():
        return done
    with out.open("rb+") as handle:
        offset = 0
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line)
                key, digest = (row["task_id"], row["sample"]), _digest(row["completion"])
                if row["status"] not in STATUSES or key in done:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                if not line.endswith(b"\n"):
                    handle.truncate(offset)
                    break
                raise HarnessError(f"{out}:{number}: not a result row of this scoring",
                                   fix="delete the file, or pass another --out") from None  # fmt: skip
            done[key] = digest
            tally.add(row)
            offset += len(line)
    return done


def _check_samples(path: Path, task: str, out: Path, done: dict) -> int:
    """The first pass: every line is a sample, and rows already written are of these samples."""
    count = matched = 0
    for tid, index, completion in iter_samples(path, task):
        count += 1
        digest = done.get((tid, index))
        if digest is not None:
            if digest != _digest(completion):
                raise HarnessError(f"{out} holds a row for {tid} sample {index} with another completion than {path}",
                                   fix="delete it, or pass another --out")  # fmt: skip
            matched += 1
    if count == 0:
        raise HarnessError(f"samples file {path} has no samples")
    if matched != len(done):
        raise HarnessError(f"{out} holds rows for samples that {path} does not have", fix="delete it, or pass another --out")
    return count


Progress = Callable[[int, int, int], None]  # (programs done, total, passed so far)


def score_file(path: Path, task: str, sandbox: Sandbox, out: Path, ks: Sequence[int] = DEFAULT_KS,
               progress: Progress | None = None) -> dict:  # fmt: skip
    """Score a samples file made elsewhere; append its rows to `out` (resuming); the summary."""
    tally = Tally()
    done = _finished(out, tally)
    total = _check_samples(path, task, out, done)
    out.parent.mkdir(parents=True, exist_ok=True)
    todo = (sample for sample in iter_samples(path, task) if sample[:2] not in done)
    with out.open("a") as handle:
        if progress:
            progress(len(done), total, tally.statuses["passed"])
        for row in execute_iter(task, todo, sandbox):
            handle.write(json.dumps({key: row[key] for key in ROW_FIELDS}) + "\n")
            handle.flush()  # a killed scoring keeps every verdict it reached
            tally.add(row)
            if progress:
                progress(sum(tally.statuses.values()), total, tally.statuses["passed"])
    summary = tally.summary(ks)
    summary.update(benchmark_problems=len(programs.reference_problems(task)), resumed=len(done))
    return summary


def reference(task: str, sandbox: Sandbox, progress: Progress | None = None, split: str = "test") -> tuple[dict, list[dict]]:
    """Canonical solutions through the same path; (summary, rows)."""
    problems = programs.reference_problems(task, split)
    samples = [(p["task_id"], 0, programs.reference_completion(task, p)) for p in problems]
    rows = []
    for row in execute_iter(task, samples, sandbox):
        rows.append(row)
        if progress:
            progress(len(rows), len(samples), sum(r["status"] == "passed" for r in rows))
    return summarize(rows, (1,)), rows
