"""Committed per-run records: what a comparison reads of each run, without checkpoints, exports
or logs, so that `harness compare STUDY` regenerates a study's tables on a fresh clone, and a
later statistic can re-score the runs without training them again.

Layout, beside the tables (`results/<study>/records/`):

    index.json          the study's runs: part (primary, sweep, view flops), arm, seed, lr, dir
    <run dir name>/     a run directory cut down to what `collect.RunRecord` reads:
      recipe.yaml, plan.json        as the run wrote them
      provenance.json               the commit it was trained at (and whether it was dirty)
      stages.json                   the train stage's validation losses; evaluate's presence
      data.json                     the data manifest's hash and the tokenizer's
      eval/summary.json             as the run wrote it
      eval/nll_<task>.jsonl         per-problem canonical-solution NLL, as written
      eval/<task>_<variant>.jsonl   per-sample pass/fail (task_id, sample, status)
      eval/<probe>_greedy.jsonl     per-example probe rows (the fields the probe scores read)
      eval/acceptance.json          as written
      eval/position_summary/        per-row quarter means, the mean curve, and the same at
                                    every kept checkpoint (`collect.PositionSummary`)
      track/metrics.jsonl           the validation rows (step, tokens seen, val/*)

A record is read by the same code as a run directory, so tables from records and from the
runs are the same bytes. Records are written by `harness compare` whenever it reads the runs
themselves; where a run directory is missing, its record is read instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.report.collect import POSITION_SUMMARY, RunRecord
from harness.report.probe_outcomes import FIELDS as PROBE_FIELDS

INDEX = "index.json"
PASS_FIELDS = ("task_id", "sample", "status")


def _dump(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def _jsonl(path: Path, keep: tuple[str, ...] | None) -> str:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(json.dumps({k: row[k] for k in keep if k in row} if keep else row, sort_keys=True))
    return "".join(line + "\n" for line in out)


def write_record(run_dir: Path, dest: Path, *, evaluated: bool = True) -> None:
    """Copy what a comparison reads of `run_dir` into `dest` (replaced whole)."""
    from harness.pipeline import Ledger

    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "eval").mkdir(parents=True)
    (tmp / "track").mkdir()
    for name in ("recipe.yaml", "plan.json"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, tmp / name)
    if (run_dir / "provenance.json").exists():  # which commit trained it, nothing of the machine
        git = json.loads((run_dir / "provenance.json").read_text()).get("git", {})
        (tmp / "provenance.json").write_text(_dump({"git": {k: git.get(k) for k in ("commit", "dirty")}}))
    ledger = Ledger(run_dir).data
    stages = {"train": {"outputs": {k: ledger["train"]["outputs"].get(k) for k in ("val", "step")}}}
    if evaluated and "evaluate" in ledger:
        stages["evaluate"] = {"outputs": {"dir": "eval"}}
    (tmp / "stages.json").write_text(_dump(stages))
    data = json.loads((run_dir / "data.json").read_text()) if (run_dir / "data.json").exists() else {}
    tokenizer = data.get("manifest", {}).get("tokenizer", {}).get("hash", "")
    (tmp / "data.json").write_text(_dump({"manifest_hash": data.get("manifest_hash", ""),
                                          "manifest": {"tokenizer": {"hash": tokenizer}}}))
    if evaluated:
        _copy_eval(run_dir / "eval", tmp / "eval")
        record = RunRecord(run_dir=run_dir, recipe={}, plan={}, stages={}, data={}, summary={})
        if record.positions is not None:
            record.positions.save(tmp / "eval" / POSITION_SUMMARY)
    metrics = run_dir / "track" / "metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        kept = [{k: v for k, v in r.items() if k in ("step", "tokens_seen") or k.startswith("val/")}
                for r in rows if "val/depth_1" in r]
        (tmp / "track" / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _copy_eval(src: Path, dst: Path) -> None:
    for name in ("summary.json", "acceptance.json"):
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    for path in sorted(src.glob("*.jsonl")):
        stem = path.stem
        if stem.startswith("nll_"):
            (dst / path.name).write_text(_jsonl(path, None))
        elif stem.endswith("_greedy") and stem.removesuffix("_greedy") in PROBE_FIELDS:
            (dst / path.name).write_text(_jsonl(path, PROBE_FIELDS[stem.removesuffix("_greedy")]))
        elif "_" in stem:  # <task>_<variant>.jsonl: per-sample pass/fail
            (dst / path.name).write_text(_jsonl(path, PASS_FIELDS))


def write_records(entries: list[dict], records_dir: Path, study: str) -> None:
    """entries: {"part", "arm", "seed", "lr", "run_dir": Path} per run; rewrites the folder."""
    records_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for entry in entries:
        run_dir = Path(entry["run_dir"])
        if run_dir.resolve().parent != records_dir.resolve():  # read from a record already: nothing to copy
            write_record(run_dir, records_dir / run_dir.name, evaluated=entry["part"] != "sweep")
        index.append({k: entry[k] for k in ("part", "arm", "seed", "lr")} | {"dir": run_dir.name})
    index.sort(key=lambda e: (e["part"], e["arm"], e["seed"], e["lr"] or 0.0))
    keep = {e["dir"] for e in index}
    for path in records_dir.iterdir():  # records of runs the study no longer has
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path)
    atomic_write_text(records_dir / INDEX, _dump({"study": study, "runs": index}))


class Records:
    """A study's committed records, looked up by (part, arm, seed or lr)."""

    def __init__(self, records_dir: Path):
        self.dir = records_dir
        path = records_dir / INDEX
        try:
            index = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": []}
            self.runs = {(e["part"], e["arm"], e["seed"] if e["part"] != "sweep" else e["lr"]): e["dir"]
                         for e in index["runs"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"{path} is not a records index ({type(exc).__name__}: {exc})",
                               fix="restore it from git (`git checkout -- <path>`) or rerun the study and compare") from None

    def find(self, part: str, arm: str, key) -> Path | None:
        name = self.runs.get((part, arm, key))
        if name is None or "/" in name or name.startswith("."):  # a name from a file: never a path elsewhere
            return None
        path = self.dir / name
        return path if path.is_dir() else None

    def __bool__(self) -> bool:
        return bool(self.runs)
