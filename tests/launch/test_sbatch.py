"""Generated sbatch scripts: valid bash, shellcheck-clean, and saying what the job needs."""

import itertools
import re
import shutil
import subprocess

import pytest

from harness.errors import HarnessError
from harness.launch.jobs import plan_jobs, submit, write_jobs
from harness.launch.sbatch import SlurmOptions
from harness.recipe import load_recipe, recipe_hash
from tests.conftest import RECIPES

VARIANTS = [
    dict(container=c, runtime=r, launcher=l)
    for (c, r), l in itertools.product(
        [(None, "pyxis"), ("docker://registry#mtp-harness:cuda-0123456789ab", "pyxis"), ("/images/mtp.sif", "apptainer")],
        ["srun", "torchrun"])
]


def _options(**kw):
    return SlurmOptions(**{"nodes": 2, "gpus_per_node": 4, "partition": "gpu", "time": "1-00:00:00",
                           "account": "proj", "cpus_per_gpu": 8, "mounts": ("/data",), **kw})


def _script(tmp_path, **kw):
    [job] = plan_jobs(str(RECIPES / "deepseek_n2.yaml"), (), _options(**kw), tmp_path / "jobs", tmp_path)
    return job


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['runtime'] if v['container'] else 'host'}-{v['launcher']}")
def test_scripts_pass_bash_n_and_shellcheck(tmp_path, variant):
    job = _script(tmp_path, **variant)
    write_jobs([job])
    subprocess.run(["bash", "-n", str(job.script_path)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    proc = subprocess.run(["shellcheck", "--shell=bash", str(job.script_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _directives(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([a-z-]+)(?:=(.*))?$", script, flags=re.M))


def test_srun_launcher_runs_one_rank_per_gpu_with_slurm_ranks(tmp_path):
    job = _script(tmp_path, container="docker://r#img:tag")
    d = _directives(job.script)
    assert (d["nodes"], d["ntasks-per-node"], d["gpus-per-node"], d["cpus-per-task"]) == ("2", "4", "4", "8")
    assert (d["partition"], d["time"], d["account"], d["signal"]) == ("gpu", "1-00:00:00", "proj", "USR1@300")
    assert "requeue" in d and d["output"].endswith("slurm-%j.out")
    assert "python -m harness.launch.slurm_env harness run \"$RECIPE\"" in job.script
    assert '--container-image="$IMAGE"' in job.script
    assert f"MOUNTS={tmp_path}:{tmp_path},/data:/data" in job.script
    assert 'export MTP_HARNESS_CONTAINER_IMAGE="$IMAGE"' in job.script
    assert 'scontrol requeue "$SLURM_JOB_ID"' in job.script


def test_torchrun_launcher_forwards_usr1_and_waits_for_the_checkpoint(tmp_path):
    job = _script(tmp_path, launcher="torchrun", container="/i.sif", runtime="apptainer", signal_seconds=600)
    d = _directives(job.script)
    assert (d["ntasks-per-node"], d["cpus-per-task"]) == ("1", "32")
    assert "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1" in job.script
    assert "--shutdown-timeout=570" in job.script
    assert '--rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT"' in job.script
    assert "apptainer exec --nv" in job.script and "MTP_HARNESS_CONTAINER_IMAGE" in job.script


def test_host_run_exports_no_image(tmp_path):
    job = _script(tmp_path)
    assert "MTP_HARNESS_CONTAINER_IMAGE" not in job.script and "--container-image" not in job.script


def test_requeue_can_be_turned_off(tmp_path):
    assert "no-requeue" in _directives(_script(tmp_path, requeue=False).script)


@pytest.mark.parametrize("field, value, message", [
    ("time", "tomorrow", "Slurm time"),
    ("mounts", ("relative/dir",), "absolute path"),
    ("nodes", 0, "greater than or equal to 1"),
    ("signal_seconds", 5, "greater than or equal to 60"),
])
def test_bad_options_are_refused(field, value, message):
    with pytest.raises(Exception, match=message):
        _options(**{field: value})


def test_job_runs_exactly_the_resolved_recipe(tmp_path):
    job = _script(tmp_path, container="x")
    write_jobs([job])
    recipe = load_recipe(str(RECIPES / "deepseek_n2.yaml"))
    assert recipe_hash(load_recipe(job.job.recipe)) == recipe_hash(recipe) == job.job.recipe_sha256
    assert job.job.directory.name == f"deepseek_n2-{recipe_hash(recipe)[:8]}"
    assert f"RECIPE={job.job.recipe}" in job.script


def test_study_gives_one_job_per_arm_and_seed_with_the_matched_budget(tmp_path, write):
    from harness.study import load_study

    study_path = write("study.yaml", f"""\
        study_version: 1
        name: two
        baseline: stp
        matching: {{rule: flops, tolerance: 0.01}}
        seeds: [0, 1]
        arms:
          stp: {{recipe: {RECIPES / 'stp.yaml'}}}
          ds: {{recipe: {RECIPES / 'deepseek_n2.yaml'}}}
        """)
    jobs = plan_jobs(str(study_path), (), _options(), tmp_path / "jobs", tmp_path)
    assert [j.job.name for j in jobs] == ["two-stp-s0", "two-stp-s1", "two-ds-s0", "two-ds-s1"]
    assert len({j.job.directory for j in jobs}) == 4
    write_jobs(jobs)
    study = load_study(study_path)
    for job, (_, seed, recipe) in zip(jobs, study.runs()):
        written = load_recipe(job.job.recipe)
        assert written.train.seed == seed and written.steps == recipe.steps
        assert recipe_hash(written) == recipe_hash(recipe)


def test_submit_without_sbatch_is_a_clear_error(tmp_path, monkeypatch):
    job = _script(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match="sbatch is not on PATH"):
        submit([job])


def test_submit_passes_each_script_to_sbatch(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "sbatch"  # stands in for Slurm: records its arguments, answers --parsable style
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\necho "4242;cluster"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    job = _script(tmp_path)
    write_jobs([job])
    assert submit([job]) == ["4242"]
    assert (tmp_path / "calls").read_text().split() == ["--parsable", str(job.script_path)]
