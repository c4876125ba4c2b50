"""Every committed study's tables come back byte for byte from its committed records alone: what a
fresh clone's `harness compare recipes/studies/<study>.yaml` does, with no run directory anywhere."""

from __future__ import annotations

import shutil

import pytest

from harness.report.compare import find_runs, run_compare
from tests.conftest import RECIPES, ROOT

RESULTS = ROOT / "results"
TABLES = ("comparison.md", "comparison.csv", "comparison.json", "report.html")
COMMITTED = sorted(p.parent.parent.name for p in RESULTS.glob("*/records/index.json"))


def test_the_committed_studies_carry_their_records():
    assert {"laptop", "induction", "polynomial"} <= set(COMMITTED)


@pytest.mark.slow
@pytest.mark.parametrize("study", COMMITTED)
def test_compare_on_a_fresh_clone_regenerates_the_committed_tables(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of a developer's runs/ or mlflow.db is in reach
    out = tmp_path / "results" / study
    shutil.copytree(RESULTS / study, out)
    for name in TABLES:
        (out / name).unlink()
    found = find_runs((str(RECIPES / "studies" / f"{study}.yaml"),), None, None, tmp_path / "runs", False, out)
    run_compare(found, baseline=None, out_dir=out, force=False, log=False)
    for name in TABLES:
        assert (out / name).read_bytes() == (RESULTS / study / name).read_bytes(), f"{study}/{name}"
