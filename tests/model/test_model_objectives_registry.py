"""The plug-in door: a copy of `stp.py` dropped into the objectives folder, changing nothing
else, plans, trains, exports, evaluates, tracks and compares; an entry point adds an
objective from outside the package; a broken or clashing plug-in is one error line.

Each case runs the harness in a fresh process (the recipe schema is built from what is
registered when `harness.recipe` is imported), from a copy of the package on PYTHONPATH,
which comes before the editable install on sys.path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

OBJECTIVES = ROOT / "harness" / "model" / "objectives"
ARM = """\
recipe_version: 1
name: {name}
model: {{stp_layers: 2, d_model: 32, n_heads: 2, n_kv_heads: 1, ffn_hidden: 64, vocab_size: 320, seq_len: 32}}
objective: {{kind: {kind}}}
data: {{source: {{kind: stdlib, max_files: 30}}, decontaminate: {{enabled: false}}}}
train: {{steps: 4, global_batch_size: 4, micro_batch_size: 2, num_threads: 1, eval_every: 2, eval_batches: 2,
        checkpoint_every: 4, optimizer: {{lr: 0.01}}, schedule: {{warmup_steps: 1}}}}
eval: {{tasks: [humaneval], limit: 2, max_gen_toks: 8, batch_size: 2, num_threads: 1, analysis_batches: 2,
       analysis_batch_size: 2}}
track: {{experiment: plugin-proof}}
"""
STUDY = """\
study_version: 1
name: plugin
baseline: stp
matching: {rule: flops, tolerance: 0.01}
arms:
  stp: {recipe: stp.yaml}
  copy: {recipe: copy.yaml}
"""


def harness(cwd: Path, pythonpath: Path, *args, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc


def package_copy(tmp_path: Path) -> Path:
    """A copy of the harness package; returns the folder to put on PYTHONPATH."""
    root = tmp_path / "pkg"
    shutil.copytree(ROOT / "harness", root / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def distribution(tmp_path: Path, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """A folder that importlib.metadata reads as an installed distribution with these
    `mtp_harness.objectives` entry points and these top-level modules."""
    root = tmp_path / "site"
    info = root / "plugin_objectives-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-objectives\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mtp_harness.objectives]\n{lines}")
    for name, text in modules.items():
        (root / f"{name}.py").write_text(text)
    return root


def test_an_entry_point_adds_an_objective_from_another_package(tmp_path):
    site = distribution(tmp_path, {"outside": "outside"}, {"outside": (OBJECTIVES / "stp.py").read_text()})
    (tmp_path / "r.yaml").write_text(ARM.format(name="outside", kind="outside"))
    plan = harness(tmp_path, site, "plan", "r.yaml")
    assert plan.returncode == 0, plan.stderr
    assert "outside" in plan.stdout and "matched" not in plan.stdout
    unknown = harness(tmp_path, site, "plan", "r.yaml", "objective.kind=outsid")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "'outside'" in unknown.stderr and "did you mean 'outside'" in unknown.stderr


@pytest.mark.parametrize("points, modules, message", [
    ({"meta": "meta"}, {"meta": (OBJECTIVES / "stp.py").read_text()}, "objective 'meta' is defined twice"),
    ({"broken": "broken"}, {"broken": "raise RuntimeError('no GPU here')\n"}, "failed to import: no GPU here"),
    ({"empty": "empty"}, {"empty": "X = 1\n"}, "expected one ObjectiveConfig subclass with kind 'empty'"),
])
def test_a_bad_plugin_is_one_error_line(tmp_path, points, modules, message):
    site = distribution(tmp_path, points, modules)
    (tmp_path / "r.yaml").write_text(ARM.format(name="r", kind="stp"))
    proc = harness(tmp_path, site, "plan", "r.yaml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr


@pytest.mark.slow
def test_a_copy_of_stp_plans_runs_and_compares(tmp_path):
    """The issue's proof: `stp.py` copied as `stp_copy.py`, nothing else changed. Being STP
    under another name, the copy must also give STP's numbers, bit for bit."""
    pkg = package_copy(tmp_path)
    shutil.copy(pkg / "harness/model/objectives/stp.py", pkg / "harness/model/objectives/stp_copy.py")
    (tmp_path / "stp.yaml").write_text(ARM.format(name="stp", kind="stp"))
    (tmp_path / "copy.yaml").write_text(ARM.format(name="copy", kind="stp_copy"))
    (tmp_path / "study.yaml").write_text(STUDY)

    plan = harness(tmp_path, pkg, "plan", "study.yaml")
    assert plan.returncode == 0, plan.stderr
    assert "stp_copy" in plan.stdout and "matched on flops" in plan.stdout
    for recipe in ("stp.yaml", "copy.yaml"):
        run = harness(tmp_path, pkg, "run", recipe, "--runs", "runs")
        assert run.returncode == 0, run.stderr[-3000:]
    compare = harness(tmp_path, pkg, "compare", "study.yaml", "--runs", "runs", "--out", "out")
    assert compare.returncode == 0, compare.stderr[-3000:]

    (copy_dir,) = (tmp_path / "runs").glob("copy-*")
    (stp_dir,) = (tmp_path / "runs").glob("stp-*")
    assert yaml.safe_load((copy_dir / "recipe.yaml").read_text())["objective"]["kind"] == "stp_copy"
    assert json.loads((copy_dir / "export" / "mtp_config.json").read_text())["objective"]["kind"] == "stp_copy"
    summaries = [json.loads((d / "eval" / "summary.json").read_text()) for d in (stp_dir, copy_dir)]
    assert all("humaneval/pass_at_1" in s and s["val"]["val/depth_1"] > 0 for s in summaries)
    assert summaries[0]["val"] == summaries[1]["val"]  # the same model, trained the same way
    assert json.loads((copy_dir / "track" / "state.json").read_text())["synced"] is True
    document = json.loads((tmp_path / "out" / "comparison.json").read_text())
    arms = {a["arm"]: a for a in document["arms"]}
    assert arms["copy"]["objective"] == "stp_copy" and arms["copy"]["gains"]["val_loss"]["mean"] == 0.0
