"""Every committed study's tables come back byte for byte from its committed records alone: what a
fresh clone's `harness compare recipes/studies/<study>.yaml` does, with no run directory anywhere."""

from __future__ import annotations

import shutil

import pytest

from harness.report.compare import find_runs, run_compare
from tests.conftest import RECIPES, ROOT

RESULTS = ROOT / "results"
TABLES = ("comparison.md", "comparison.csv", "comparison.json", "report.html")
COMMITTED = sorted(p.parent.name for p in RESULTS.glob("*/comparison.json"))
SUPERSEDED = sorted(RESULTS.glob("superseded-*/*/comparison.json"))


def test_the_committed_studies_carry_their_records():
    # A study's tables without its records could not be re-scored by a later statistic: the
    # reason the 2026-12-01 tables had to be set aside rather than corrected.
    for study in COMMITTED:
        assert (RESULTS / study / "records" / "index.json").is_file(), f"results/{study} has no records/"


def test_superseded_tables_say_so_where_a_reader_looks():
    assert SUPERSEDED, "the 2026-12-01 tables are kept for checking"
    for table in SUPERSEDED:
        folder = table.parent
        explained = (folder.parent / "README.md").read_text()
        assert f"`{folder.name}/`" in explained
        assert "**Superseded.**" in (folder / "comparison.md").read_text().split("\n\n", 2)[1]
        assert "<strong>Superseded.</strong>" in (folder / "report.html").read_text()[:3000]


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
