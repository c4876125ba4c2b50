"""`harness launch slurm|hostfile` from the command line."""

from harness.launch.hostfile import render_hostfile
from tests.conftest import RECIPES

STUDY = RECIPES / "studies" / "cluster_7b.yaml"


def test_dry_run_prints_every_job_and_writes_nothing(cli, tmp_path):
    result = cli("launch", "slurm", STUDY, "--nodes", "16", "--gpus-per-node", "8", "--out", tmp_path / "jobs", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.count("#!/bin/bash") == 3  # three arms, one seed
    assert not (tmp_path / "jobs").exists()


def test_write_then_submit_hint(cli, tmp_path):
    result = cli("launch", "slurm", RECIPES / "stp.yaml", "train.steps=7", "--nodes", "1", "--gpus-per-node", "2",
                 "--out", tmp_path / "jobs")
    assert result.exit_code == 0, result.output
    [script] = (tmp_path / "jobs").glob("stp-*/job.sbatch")
    assert "submit with: sbatch" in result.output
    assert "steps: 7" in (script.parent / "recipe.yaml").read_text()


def test_bad_input_is_one_line(cli, tmp_path):
    result = cli("launch", "slurm", RECIPES / "stp.yaml", "--nodes", "1", "--gpus-per-node", "1", "--time", "soon")
    assert result.exit_code == 2 and result.output.count("error:") == 1 and "--time" in result.output
    result = cli("launch", "slurm", RECIPES / "stp.yaml", "--nodes", "1", "--gpus-per-node", "1", "--dry-run", "--submit")
    assert result.exit_code == 2 and "contradict" in result.output


def test_hostfile(cli, tmp_path, monkeypatch):
    assert render_hostfile("gpu[1-2]", 8) == "gpu1 slots=8\ngpu2 slots=8\n"
    monkeypatch.setenv("SLURM_JOB_NODELIST", "n[01-03]")
    result = cli("launch", "hostfile", "--slots", "4", "-o", tmp_path / "hostfile")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "hostfile").read_text().splitlines() == ["n01 slots=4", "n02 slots=4", "n03 slots=4"]
    result = cli("launch", "hostfile", "--hosts", "a,a", "--slots", "1")
    assert result.exit_code == 2 and "twice" in result.output
