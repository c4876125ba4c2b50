"""`harness plan` prints each arm's memory per GPU and time, and warns, in one line with the
settings that would fit, when an arm does not fit the declared GPU memory."""

from __future__ import annotations

from tests.conftest import RECIPES


def test_plan_prints_memory_and_time_per_arm(cli):
    result = cli("plan", RECIPES / "studies" / "gpu_125m.yaml")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "per GPU on 8 x H100 SXM (80 GiB" in out and "time at MFU 40%" in out
    for arm in ("stp_125m", "meta_125m_n4", "deepseek_125m_d1"):
        assert arm in out.split("per GPU on", 1)[1]
    assert "warning:" not in out  # every GPU arm fits


def test_a_recipe_that_does_not_fit_gets_one_line_with_the_settings_that_would(cli):
    result = cli("plan", RECIPES / "cluster" / "meta_7b_n4.yaml", "train.zero_stage=1")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("warning: meta_7b_n4 needs")]
    assert len(lines) == 1, result.stdout
    assert "over 90% of 80 GiB; fits with: train.zero_stage=2 (" in lines[0]
    assert "no" in result.stdout.split("per GPU on", 1)[1]
    small = cli("plan", RECIPES / "gpu" / "stp_1b.yaml", "--gpu-memory", "24GB")
    assert "warning: stp_1b needs" in small.stdout and "over 90% of 24 GiB" in small.stdout


def test_the_7b_recipe_as_committed_fits_80gb(cli):
    result = cli("plan", RECIPES / "cluster" / "meta_7b_n4.yaml")
    assert result.exit_code == 0, result.output
    assert "warning: meta_7b_n4 needs" not in result.stdout and "bf16 Z2 mb2" in result.stdout


def test_plan_options_are_refused_in_one_line(cli):
    for args, message in ((["--gpu", "H900"], "unknown GPU family 'H900'"),
                          (["--gpu-memory", "lots"], "--gpu-memory 'lots' is not a size")):
        result = cli("plan", RECIPES / "stp.yaml", *args)
        assert result.exit_code == 2 and message in result.stderr
        assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_a_cpu_recipe_gets_its_gpu_plan_only_when_asked(cli):
    quiet = cli("plan", RECIPES / "deepseek_n2.yaml")
    assert quiet.exit_code == 0, quiet.output
    assert "per GPU on" not in quiet.stdout and "GPUs (plan for another --gpus" not in quiet.stdout
    assert "add --gpus N" in quiet.stdout
    asked = cli("plan", RECIPES / "deepseek_n2.yaml", "--gpus", "1")
    assert "per GPU on 1 x H100 SXM" in asked.stdout and "add --gpus N" not in asked.stdout
