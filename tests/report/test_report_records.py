"""Committed records: `harness compare` writes them beside the tables, and from them alone (no
run directories) it writes the same tables, byte for byte; a changed study is refused, and a
hostile index names no path outside the records."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.recipe import resolved_yaml
from harness.report.compare import find_runs, run_compare
from harness.report.records import Records
from harness.run.pipeline import run_dir_for
from harness.study.design import load_study
from tests.conftest import RECIPES
from tests.report.report_helpers import along_training, make_run

TABLES = ("comparison.md", "comparison.csv", "comparison.json", "report.html")


def study_file(write, grid="[0.001, 0.003]"):
    return write("syn.yaml", f"""\
        study_version: 1
        name: syn
        baseline: stp
        matching: {{rule: tokens, tolerance: 0.01}}
        seeds: [0, 1]
        lr_sweep: {{grid: {grid}, seed: 1000, extend: 1}}
        arms:
          stp: {{recipe: {RECIPES / 'stp.yaml'}}}
          meta: {{recipe: {RECIPES / 'meta_n2.yaml'}}}
          twin: {{recipe: {RECIPES / 'stp.yaml'}, control_of: stp, seed_offset: 100}}
        """)


def fake_study_runs(study, runs, rng):
    """Finished run directories where `harness study` would put them: sweep points (each arm's
    choice on the grid's top, so the sweep adds 0.009; stp's best is then interior, meta's
    capped) and every arm x seed, with per-unit outcomes."""
    import math

    kinds = {"stp": "stp", "meta": "meta", "twin": "stp"}
    for arm, lr in [(a, lr) for a in ("stp", "meta") for lr in (0.001, 0.003, 0.009)]:
        recipe = study.sweep_run(arm, lr)
        run_dir = run_dir_for(recipe, runs)
        run_dir.mkdir(parents=True, exist_ok=True)
        val = {"val/depth_1": 5.0 - lr if arm == "meta" else 5.0 + abs(math.log(lr / 0.003))}
        if arm == "meta":
            val["val/depth_2"] = val["val/depth_1"] + 1
        (run_dir / "stages.json").write_text(json.dumps({"train": {"inputs": "x", "outputs": {"val": val}}}))
        (run_dir / "recipe.yaml").write_text(resolved_yaml(recipe))
    lrs = {"stp": 0.003, "meta": 0.009}
    base = 3.0 + rng.gamma(2.0, 0.5, size=(40, 16))
    for arm, seed, recipe in study.runs(lrs):
        pp = base * (0.97 if arm == "meta" else 1.0) * (1 + rng.normal(0, 0.003)) + rng.normal(0, 0.02, base.shape)
        made = make_run(runs / "made", arm, kinds[arm], seed=seed, per_position=pp, trajectory=along_training(pp),
                        outcomes={"humaneval": (rng.random(30) < 0.3).astype(int)},
                        tags={"control_of": "stp"} if arm == "twin" else None)
        (made / "recipe.yaml").write_text(resolved_yaml(recipe))
        (made / "provenance.json").write_text(json.dumps({"git": {"commit": "c" * 40, "dirty": False}, "host": "x"}))
        made.rename(run_dir_for(recipe, runs))


@pytest.fixture
def compared(write, tmp_path):
    study_path = study_file(write)
    study = load_study(study_path)
    runs = tmp_path / "runs"
    fake_study_runs(study, runs, np.random.default_rng(0))
    out = tmp_path / "results"
    found = find_runs((str(study_path),), None, None, runs, False, out)
    run_compare(found, baseline=None, out_dir=out, force=False, log=False, n_resamples=500)
    return study_path, runs, out


def test_compare_from_records_alone_writes_the_same_bytes(compared, tmp_path):
    study_path, runs, out = compared
    index = json.loads((out / "records" / "index.json").read_text())
    parts = sorted({(e["part"], e["arm"]) for e in index["runs"]})
    assert len(index["runs"]) == 6 + 6
    assert parts == [("primary", "meta"), ("primary", "stp"), ("primary", "twin"), ("sweep", "meta"), ("sweep", "stp")]
    assert sorted(e["lr"] for e in index["runs"] if e["arm"] == "meta" and e["part"] == "sweep") == [0.001, 0.003, 0.009]
    one = out / "records" / next(e["dir"] for e in index["runs"] if e["part"] == "primary")
    assert not (one / "eval" / "per_position.npy").exists() and (one / "eval" / "position_summary" / "rows.npy").exists()
    assert json.loads((one / "provenance.json").read_text()) == {"git": {"commit": "c" * 40, "dirty": False}}
    again = tmp_path / "again"
    shutil.copytree(out, again)
    for name in TABLES:
        (again / name).unlink()
    shutil.rmtree(runs)  # a fresh clone: no run directories, only the committed records
    found = find_runs((str(study_path),), None, None, runs, False, again)
    run_compare(found, baseline=None, out_dir=again, force=False, log=False, n_resamples=500)
    for name in TABLES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    assert sorted(p.name for p in (again / "records").iterdir()) == sorted(p.name for p in (out / "records").iterdir())
    document = json.loads((again / "comparison.json").read_text())
    assert document["run_commits"] == ["c" * 40] and document["protocol"]["sweep"]["grids"]["meta"] == [0.001, 0.003, 0.009]
    assert document["protocol"]["sweep"]["edge"] == {"stp": False, "meta": True}  # meta's choice is capped


def test_records_of_another_design_are_refused(compared, write, tmp_path):
    study_path, runs, out = compared
    shutil.rmtree(runs)
    original = study_path.read_text()
    changed = write("syn.yaml", original.replace("seeds: [0, 1]", "seeds: [0, 1]\noverrides: {train.optimizer.weight_decay: 0.0}"))
    with pytest.raises(HarnessError, match="trained from another recipe .*weight_decay"):
        find_runs((str(changed),), None, None, runs, False, out)
    more = write("syn.yaml", original.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    with pytest.raises(HarnessError, match="not run yet"):
        find_runs((str(more),), None, None, runs, False, out)


def test_a_hostile_records_index_points_nowhere_else(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (records / "index.json").write_text(json.dumps({"runs": [
        {"part": "primary", "arm": "stp", "seed": 0, "lr": None, "dir": "../elsewhere"},
        {"part": "primary", "arm": "stp", "seed": 1, "lr": None, "dir": "/etc"}]}))
    found = Records(records)
    assert found.find("primary", "stp", 0) is None and found.find("primary", "stp", 1) is None
    (records / "index.json").write_text("{not json")
    with pytest.raises(HarnessError, match="not a records index"):
        Records(records)
