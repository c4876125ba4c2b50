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

import shutil
from pathlib import Path

from harness import rundir
from harness.errors import HarnessError
from harness.report.collect import RunRecord
from harness.report.probe_outcomes import FIELDS as PROBE_FIELDS
from harness.rundir import Ledger, RunDir

INDEX = "index.json"
PASS_FIELDS = ("task_id", "sample", "status")


def _jsonl(path: Path, keep: tuple[str, ...] | None) -> str:
    rows = rundir.read_jsonl(path)
    return "".join(rundir.jsonl_line({k: row[k] for k in keep if k in row} if keep else row) for row in rows)


def write_record(run_dir: Path, dest: Path, *, evaluated: bool = True) -> None:
    """Copy what a comparison reads of `run_dir` into `dest` (replaced whole)."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    src, out = RunDir(run_dir), RunDir(tmp)
    out.eval.mkdir(parents=True)
    out.track.mkdir()
    for name in (rundir.RECIPE, rundir.PLAN):
        if (src / name).exists():
            shutil.copyfile(src / name, out / name)
    if src.provenance.exists():  # which commit trained it, nothing of the machine
        git = rundir.read_json(src.provenance).get("git", {})
        rundir.write_json(out.provenance, {"git": {k: git.get(k) for k in ("commit", "dirty")}})
    ledger = Ledger(run_dir).data
    stages = {"train": {"outputs": {k: ledger["train"]["outputs"].get(k) for k in ("val", "step")}}}
    if evaluated and "evaluate" in ledger:
        stages["evaluate"] = {"outputs": {"dir": rundir.EVAL}}
    rundir.write_json(out.stages, stages)
    data = rundir.read_json(src.data, default={})
    tokenizer = data.get("manifest", {}).get("tokenizer", {}).get("hash", "")
    kept = {"manifest_hash": data.get("manifest_hash", ""), "manifest": {"tokenizer": {"hash": tokenizer}}}
    if "self_distill" in data:  # what the training rows were (data.self_distill), not this machine's cache path
        kept["self_distill"] = {k: v for k, v in data["self_distill"].items() if k not in ("path", "reused")}
    rundir.write_json(out.data, kept)
    if evaluated:
        _copy_eval(src.eval, out.eval)
        record = RunRecord(run_dir=run_dir, recipe={}, plan={}, stages={}, data={}, summary={})
        if record.positions is not None:
            record.positions.save(out.eval / rundir.POSITION_SUMMARY)
    if src.metrics.exists():
        kept = [{k: v for k, v in r.items() if k in ("step", "tokens_seen") or k.startswith("val/")}
                for r in rundir.read_jsonl(src.metrics) if "val/depth_1" in r]
        rundir.write_jsonl(out.metrics, kept)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _copy_eval(src: Path, dst: Path) -> None:
    for name in (rundir.SUMMARY, rundir.ACCEPTANCE):
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    for path in sorted(src.glob("*.jsonl")):
        stem = path.stem
        if path.name.startswith(rundir.nll_name("").removesuffix(".jsonl")):
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
    rundir.write_json(records_dir / INDEX, {"study": study, "runs": index})


class Records:
    """A study's committed records, looked up by (part, arm, seed or lr)."""

    def __init__(self, records_dir: Path):
        self.dir = records_dir
        path = records_dir / INDEX
        try:
            index = rundir.read_json(path, default={"runs": []})
            self.runs = {(e["part"], e["arm"], e["seed"] if e["part"] != "sweep" else e["lr"]): e["dir"]
                         for e in index["runs"]}
        except (HarnessError, ValueError, KeyError, TypeError, AttributeError) as exc:
            why = exc.problem if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
            raise HarnessError(f"{path} is not a records index ({why})",
                               fix="restore it from git (`git checkout -- <path>`) or rerun the study and compare") from None

    def find(self, part: str, arm: str, key) -> Path | None:
        name = self.runs.get((part, arm, key))
        if name is None or "/" in name or name.startswith("."):  # a name from a file: never a path elsewhere
            return None
        path = self.dir / name
        return path if path.is_dir() else None

    def __bool__(self) -> bool:
        return bool(self.runs)
