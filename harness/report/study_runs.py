"""A study's runs as the comparison reads them: each from its run directory when it has
finished there, else from the study's committed record (`report/records.py`).

A record stands for a run only if it was trained from the same recipe: every field of the
training sections that both the record's resolved recipe and the study's recipe have must
agree (fields one side lacks, from a newer or older schema, are not compared), so a changed
study is refused instead of being scored with another design's runs.
"""

from __future__ import annotations

from pathlib import Path

from harness import rundir
from harness.errors import HarnessError
from harness.report.collect import RunRecord, load_run
from harness.report.records import Records
from harness.rundir import ledger_has
from harness.study.lr_sweep import choose, point_from_run

TRAINING_SECTIONS = ("model", "objective", "data", "train")


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def design_mismatch(recorded: dict, recipe) -> list[str]:
    """Training fields on which a record's recipe and the study's recipe disagree."""
    now = recipe.model_dump(mode="json")
    differ = []
    for section in TRAINING_SECTIONS:
        a, b = _flat(recorded.get(section, {}), f"{section}."), _flat(now.get(section, {}), f"{section}.")
        differ += [f"{k}: {a[k]!r} recorded, {b[k]!r} now" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return differ


class _Finder:
    """Where each run of the study is: its run directory, or its record."""

    def __init__(self, study, runs_root: Path, records: Records):
        self.study, self.runs_root, self.records = study, Path(runs_root), records
        self.entries: list[dict] = []

    def locate(self, part: str, arm: str, key, recipe, evaluated: bool) -> Path | None:
        from harness.run.pipeline import run_dir_for

        run_dir = run_dir_for(recipe, self.runs_root)
        done = ledger_has(run_dir, "train") if not evaluated else (run_dir / rundir.STAGES).exists()
        if not done:
            run_dir = self.records.find(part, arm, key)
            if run_dir is None:
                return None
            import yaml

            recorded = yaml.safe_load((run_dir / rundir.RECIPE).read_text()) or {}
            differ = design_mismatch(recorded, recipe)
            if differ:
                raise HarnessError(f"study {self.study.config.name}: the committed record of {part} {arm} "
                                   f"{key} was trained from another recipe ({'; '.join(differ[:3])})",
                                   fix=f"run `harness study {self.study.path}` to train the study as it is now, or "
                                       "check out the commit whose study file made those records")
        seed = self.study.config.lr_sweep.seed if part == "sweep" else key
        self.entries.append({"part": part, "arm": arm, "seed": seed, "lr": key if part == "sweep" else None,
                             "run_dir": run_dir})
        return run_dir

    def sweep_point(self, arm: str, lr: float, recipe):
        run_dir = self.locate("sweep", arm, lr, recipe, evaluated=False)
        if run_dir is None:
            return None
        return point_from_run(arm, lr, run_dir, recipe.objective.deeper_depths_are_harder)


def study_records(study, runs_root: Path, records: Records, *, allow_missing: bool = False):
    """(the sweep's result, the primary runs' records, every run read as an entry for
    `records.write_records`)."""
    finder = _Finder(study, runs_root, records)
    sweep = choose(study, runs_root, lookup=finder.sweep_point) if study.config.lr_sweep else None
    if sweep is not None:  # the walk may have looked at a point more than once: keep one entry each
        finder.entries = list({(e["arm"], e["lr"]): e for e in finder.entries}.values())
    lrs = sweep.chosen if sweep else None
    runs = _records(finder, "primary", study.runs(lrs), allow_missing)
    for view in study.views:
        if view != "params":
            _records(finder, f"view {view}", study.view_runs(view, lrs), allow_missing=True)
    return sweep, runs, finder.entries


def view_records(study, runs_root: Path, records: Records, view: str, lrs) -> list[RunRecord]:
    """The runs of a secondary view that trains runs of its own (`flops`)."""
    return _records(_Finder(study, runs_root, records), f"view {view}", study.view_runs(view, lrs), allow_missing=True)


def _records(finder: _Finder, part: str, runs, allow_missing: bool) -> list[RunRecord]:
    out, missing = [], []
    for arm, seed, recipe in runs:
        run_dir = finder.locate(part, arm, seed, recipe, evaluated=True)
        if run_dir is None:
            missing.append(f"{arm} seed {seed}")
            continue
        record = load_run(run_dir)
        record.arm, record.seed = arm, seed  # the study's names win over the recipe's tags
        out.append(record)
    if missing and not allow_missing:
        study = finder.study
        raise HarnessError(f"study {study.config.name}: not run yet ({part}): {'; '.join(missing)}",
                           fix=f"run `harness study {study.path}` (with the same overrides and --runs), "
                               "or pass --force to compare the arms that exist")
    return out
