"""Generated sbatch scripts, run: bash executes each script with stand-ins for Slurm (`srun`,
`scontrol`), the container runtime (`apptainer`), `torchrun` and `harness` on PATH, so the
tests check what the script does (the command a rank runs, its environment and working
directory, requeueing after preemption, exit codes), not which strings the template holds.
`srun` really runs `python -m harness.launch.slurm_env`, which execs the stand-in `harness`."""

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.data.sources import open_source
from harness.errors import HarnessError
from harness.launch.jobs import plan_jobs, submit, write_jobs
from harness.launch.preemption import PREEMPTED_EXIT
from harness.launch.sbatch import SlurmOptions
from harness.recipe import load_recipe, recipe_hash
from tests.conftest import RECIPES

JOB_ID = "4242"

STUBS = {
    # srun: record its options, become task 0 of a one-task step, run the command.
    "srun": r"""
        while [[ $# -gt 0 && $1 == --* ]]; do echo "$1" >> "$STUB_LOG/srun.opts"; shift; done
        export SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NODEID=0 SLURM_STEP_ID=0 SLURM_STEP_NUM_TASKS=1 \
               SLURM_STEP_NODELIST=node01 SLURM_STEP_TASKS_PER_NODE=1
        exec "$@"
        """,
    "scontrol": r"""
        echo "$*" >> "$STUB_LOG/scontrol.log"
        # A big cluster's node list, written slowly after the first line: a script that stops
        # reading after one line (`head -n 1` under pipefail) dies of SIGPIPE here every time.
        if [[ $1 == show && $2 == hostnames ]]; then
            printf 'node01\n'; sleep 0.2; for i in $(seq 2 5000); do printf 'node%02d\n' "$i"; done
        fi
        """,
    # apptainer exec [--nv] [--bind X] [--pwd X] IMAGE CMD...: record, then run CMD.
    "apptainer": r"""
        printf '%s\n' "$@" > "$STUB_LOG/apptainer.argv"
        shift
        while [[ $1 == --* ]]; do if [[ $1 == --nv ]]; then shift; else shift 2; fi; done
        shift
        exec "$@"
        """,
    # torchrun ... -m harness ARGS: record, then run the harness stand-in with ARGS.
    "torchrun": r"""
        printf '%s\n' "$@" > "$STUB_LOG/torchrun.argv"
        while [[ $# -gt 0 && $1 != -m ]]; do shift; done
        shift 2
        exec harness "$@"
        """,
    # harness: log each call; record what `run` was given, then behave as STUB_MODE says.
    "harness": r"""
        echo "$*" >> "$STUB_LOG/harness.calls"
        if [[ $1 == data ]]; then
            printf '%s\n' "$@" > "$STUB_LOG/prepare.argv"
            env > "$STUB_LOG/prepare.env"
            [[ ${STUB_MODE:-ok} == prepare-fails ]] && exit 4
            exit 0
        fi
        printf '%s\n' "$@" > "$STUB_LOG/harness.argv"
        env > "$STUB_LOG/harness.env"
        pwd > "$STUB_LOG/harness.pwd"
        case "${STUB_MODE:-ok}" in
          preempt) echo SIGUSR1 > "$MTP_HARNESS_PREEMPT_FILE"; exit 75;;
          nomarker) exit 75;;
          fail) exit 3;;
        esac
        """,
}


def _options(**kw):
    return SlurmOptions(**{"nodes": 2, "gpus_per_node": 4, "partition": "gpu", "time": "1-00:00:00",
                           "account": "proj", "cpus_per_gpu": 8, "mounts": ("/data",), **kw})


def _job(tmp_path, recipe=RECIPES / "deepseek_n2.yaml", **kw):
    [job] = plan_jobs(str(recipe), (), _options(**kw), tmp_path / "jobs", tmp_path / "work")
    write_jobs([job])
    return job


class Ran:
    """What one execution of a script did."""

    def __init__(self, proc: subprocess.CompletedProcess, log: Path):
        self.proc, self.log = proc, log

    def lines(self, name: str) -> list[str]:
        path = self.log / name
        return path.read_text().splitlines() if path.exists() else []

    def env(self, name: str = "harness.env") -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.lines(name) if "=" in line)


def _execute(job, tmp_path, mode: str = "ok", **extra_env: str) -> Ran:
    stubs, log = tmp_path / "stubs", tmp_path / "log"
    stubs.mkdir(exist_ok=True)
    shutil.rmtree(log, ignore_errors=True)
    log.mkdir()
    (tmp_path / "work").mkdir(exist_ok=True)
    for name, body in STUBS.items():
        (stubs / name).write_text("#!/bin/bash\nset -eu\n" + textwrap.dedent(body))
        (stubs / name).chmod(0o755)
    env = {"PATH": f"{stubs}:{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "STUB_LOG": str(log), "STUB_MODE": mode, "SLURM_JOB_ID": JOB_ID, "SLURM_JOB_NODELIST": "node[01-02]",
           "SLURM_JOB_NUM_NODES": "2", "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **extra_env}
    proc = subprocess.run(["bash", str(job.script_path)], env=env, capture_output=True, text=True, timeout=120)
    return Ran(proc, log)


def test_a_rank_runs_the_job_recipe_from_the_workdir_with_slurm_ranks(tmp_path):
    job = _job(tmp_path)
    ran = _execute(job, tmp_path)
    assert ran.proc.returncode == 0, ran.proc.stderr
    assert ran.lines("harness.argv") == ["run", str(job.job.recipe), "--relative-to", str(RECIPES)]
    env = ran.env()
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"]) == ("0", "1", "0", "node01")
    assert env["MTP_HARNESS_PREEMPT_FILE"] == f"{job.job.directory}/preempted.{JOB_ID}"
    assert env["OMP_NUM_THREADS"] == "1" and "MTP_HARNESS_CONTAINER_IMAGE" not in env
    assert ran.lines("harness.pwd") == [str(tmp_path / "work")]
    assert "--kill-on-bad-exit=1" in ran.lines("srun.opts")
    assert ran.lines("scontrol.log") == []  # finished: nothing requeued


def test_preemption_requeues_the_job_and_drops_the_marker(tmp_path):
    job = _job(tmp_path)
    ran = _execute(job, tmp_path, "preempt")
    assert ran.proc.returncode == 0, ran.proc.stderr
    assert ran.lines("scontrol.log") == [f"requeue {JOB_ID}"]
    assert "preempted (SIGUSR1)" in ran.proc.stdout
    assert not (job.job.directory / f"preempted.{JOB_ID}").exists()


def test_exit_75_without_a_marker_is_not_requeued(tmp_path):
    ran = _execute(_job(tmp_path), tmp_path, "nomarker")
    assert ran.proc.returncode == PREEMPTED_EXIT
    assert ran.lines("scontrol.log") == [] and "left no marker" in ran.proc.stderr


def test_a_failure_keeps_its_exit_code_and_is_not_requeued(tmp_path):
    ran = _execute(_job(tmp_path), tmp_path, "fail")
    assert ran.proc.returncode == 3 and ran.lines("scontrol.log") == []


def test_a_marker_left_by_the_previous_attempt_does_not_requeue_a_finished_job(tmp_path):
    job = _job(tmp_path)
    (job.job.directory / f"preempted.{JOB_ID}").write_text("SIGUSR1\n")  # same job id after a requeue
    ran = _execute(job, tmp_path, "ok")
    assert ran.proc.returncode == 0 and ran.lines("scontrol.log") == []


def test_pyxis_puts_the_step_in_the_image_with_the_mounts(tmp_path):
    image = "docker://registry#mtp-harness:cuda-0123456789ab"
    job = _job(tmp_path, container=image)
    ran = _execute(job, tmp_path)
    assert ran.proc.returncode == 0, ran.proc.stderr
    opts = ran.lines("srun.opts")
    work = tmp_path / "work"
    assert f"--container-image={image}" in opts and f"--container-workdir={work}" in opts
    mounts = next(o for o in opts if o.startswith("--container-mounts=")).split("=", 1)[1].split(",")
    assert mounts == [f"{work}:{work}", f"{RECIPES}:{RECIPES}", "/data:/data"]  # the recipe's folder too
    assert ran.env()["MTP_HARNESS_CONTAINER_IMAGE"] == image


def test_apptainer_wraps_the_command(tmp_path):
    job = _job(tmp_path, container="/images/mtp.sif", runtime="apptainer")
    ran = _execute(job, tmp_path)
    assert ran.proc.returncode == 0, ran.proc.stderr
    argv = ran.lines("apptainer.argv")
    assert argv[:3] == ["exec", "--nv", "--bind"] and argv[argv.index("--pwd") + 1] == str(tmp_path / "work")
    assert argv[argv.index("--pwd") + 2] == "/images/mtp.sif"
    assert ran.lines("harness.argv")[:2] == ["run", str(job.job.recipe)]


def test_torchrun_rendezvous_on_the_first_node_forwarding_usr1(tmp_path):
    job = _job(tmp_path, launcher="torchrun", signal_seconds=600)
    ran = _execute(job, tmp_path)
    assert ran.proc.returncode == 0, ran.proc.stderr
    argv = ran.lines("torchrun.argv")
    port = 10000 + int(JOB_ID) % 20000
    assert "--nnodes=2" in argv and "--nproc-per-node=4" in argv and f"--rdzv-id={JOB_ID}" in argv
    assert f"--rdzv-endpoint=node01:{port}" in argv and "--shutdown-timeout=570" in argv
    assert "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1" in argv
    assert ran.lines("scontrol.log")[0] == "show hostnames node[01-02]"
    assert ran.lines("harness.argv") == ["run", str(job.job.recipe), "--relative-to", str(RECIPES)]


def test_relative_data_paths_keep_pointing_next_to_the_original_recipe(tmp_path, write):
    corpus = tmp_path / "project" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "a.py").write_text("def f():\n    return 1\n")
    recipe = write("project/local.yaml", f"""\
        extends: {RECIPES / 'stp.yaml'}
        data: {{source: {{kind: local, path: corpus}}}}
        """)
    job = _job(tmp_path, recipe)
    ran = _execute(job, tmp_path)
    argv = ran.lines("harness.argv")
    base = Path(argv[argv.index("--relative-to") + 1])
    data = load_recipe(job.job.recipe).data
    assert open_source(data, base).files == [corpus / "a.py"]  # what `harness run` will read
    with pytest.raises(HarnessError, match="matched no files"):
        open_source(data, job.job.directory)  # what a job directory alone would have meant


@pytest.mark.parametrize("variant", [dict(), dict(container="docker://r#i:t"), dict(launcher="torchrun"),
                                     dict(container="/i.sif", runtime="apptainer", launcher="torchrun")],
                         ids=["host-srun", "pyxis-srun", "host-torchrun", "apptainer-torchrun"])
def test_scripts_pass_bash_n_and_shellcheck(tmp_path, variant):
    job = _job(tmp_path, **variant)
    subprocess.run(["bash", "-n", str(job.script_path)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    proc = subprocess.run(["shellcheck", "--shell=bash", str(job.script_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _directives(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([a-z-]+)(?:=(.*))?$", script, flags=re.M))


def test_directives_ask_for_what_the_job_needs(tmp_path):
    srun = _directives(_job(tmp_path).script)
    assert (srun["nodes"], srun["ntasks-per-node"], srun["gpus-per-node"], srun["cpus-per-task"]) == ("2", "4", "4", "8")
    assert (srun["partition"], srun["time"], srun["account"], srun["signal"]) == ("gpu", "1-00:00:00", "proj", "USR1@300")
    assert "requeue" in srun and srun["output"].endswith("slurm-%j.out")
    assert "exclusive" in srun and srun["mem"] == "0"  # whole nodes: no neighbour on the GPUs' links
    assert "exclusive" not in _directives(_job(tmp_path, exclusive=False).script)
    assert SlurmOptions(nodes=1, gpus_per_node=8).cpus_per_gpu == 8  # not Slurm's 1 core per task
    torchrun = _directives(_job(tmp_path, launcher="torchrun").script)
    assert (torchrun["ntasks-per-node"], torchrun["cpus-per-task"]) == ("1", "32")
    assert "no-requeue" in _directives(_job(tmp_path, requeue=False).script)


@pytest.mark.parametrize("field, value, message", [
    ("time", "tomorrow", "Slurm time"),
    ("mounts", ("relative/dir",), "absolute path"),
    ("nodes", 0, "greater than or equal to 1"),
    ("signal_seconds", 5, "greater than or equal to 60"),
    ("cache", "relative/cache", "absolute path"),
])
def test_bad_options_are_refused(field, value, message):
    with pytest.raises(Exception, match=message):
        _options(**{field: value})


def test_job_runs_exactly_the_resolved_recipe(tmp_path):
    job = _job(tmp_path, container="x")
    recipe = load_recipe(str(RECIPES / "deepseek_n2.yaml"))
    assert recipe_hash(load_recipe(job.job.recipe)) == recipe_hash(recipe) == job.job.recipe_sha256
    assert job.job.directory.name == f"deepseek_n2-{recipe_hash(recipe)[:8]}"


def test_study_gives_one_job_per_arm_and_seed_with_the_matched_budget(tmp_path, write):
    from harness.study.design import load_study

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
    assert len({j.job.directory for j in jobs}) == 4 and {j.job.base_dir for j in jobs} == {RECIPES}
    write_jobs(jobs)
    study = load_study(study_path)
    for job, (_, seed, recipe) in zip(jobs, study.runs()):
        written = load_recipe(job.job.recipe)
        assert written.train.seed == seed and written.steps == recipe.steps
        assert recipe_hash(written) == recipe_hash(recipe)


def test_submit_without_sbatch_is_a_clear_error(tmp_path, monkeypatch):
    job = _job(tmp_path)
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
    job = _job(tmp_path)
    assert submit([job]) == ["4242"]
    assert (tmp_path / "calls").read_text().split() == ["--parsable", str(job.script_path)]



def test_one_task_prepares_the_data_in_a_shared_cache_before_the_ranks_start(tmp_path):
    job = _job(tmp_path)
    ran = _execute(job, tmp_path)
    assert ran.proc.returncode == 0, ran.proc.stderr
    assert [call.split()[:2] for call in ran.lines("harness.calls")] == [["data", "prepare"], ["run", str(job.job.recipe)]]
    assert ran.lines("prepare.argv") == ["data", "prepare", str(job.job.recipe), "--relative-to", str(RECIPES)]
    assert "--ntasks=1" in ran.lines("srun.opts") and "--nodes=1" in ran.lines("srun.opts")
    cache = str(tmp_path / "work" / ".cache" / "mtp-harness")  # under the workdir every node mounts
    assert ran.env("prepare.env")["MTP_HARNESS_CACHE"] == ran.env()["MTP_HARNESS_CACHE"] == cache
    assert (tmp_path / "work" / ".cache" / "mtp-harness").is_dir()


def test_a_cache_elsewhere_is_mounted_into_the_container(tmp_path):
    job = _job(tmp_path, container="docker://r#i:t", cache="/shared/cache")
    ran = _execute(job, tmp_path)
    opts = ran.lines("srun.opts")
    mounts = next(o for o in opts if o.startswith("--container-mounts=")).split("=", 1)[1].split(",")
    assert "/shared/cache:/shared/cache" in mounts and ran.env()["MTP_HARNESS_CACHE"] == "/shared/cache"


def test_a_failed_preparation_starts_no_ranks_and_keeps_its_exit_code(tmp_path):
    ran = _execute(_job(tmp_path), tmp_path, "prepare-fails")
    assert ran.proc.returncode == 4
    assert ran.lines("harness.argv") == [] and ran.lines("scontrol.log") == []


def test_ranks_require_cuda_and_nccl_fails_loudly_unless_the_site_says_otherwise(tmp_path):
    env = _execute(_job(tmp_path), tmp_path).env()
    assert env["MTP_HARNESS_DEVICE"] == "cuda"  # no silent CPU fallback on a GPU node
    assert env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1" and env["NCCL_DEBUG"] == "WARN"
    assert float(env["MTP_HARNESS_COLLECTIVE_TIMEOUT"]) > 10  # DeepSpeed's own default is 10 minutes
    site = _execute(_job(tmp_path), tmp_path, NCCL_DEBUG="INFO", MTP_HARNESS_COLLECTIVE_TIMEOUT="240").env()
    assert (site["NCCL_DEBUG"], site["MTP_HARNESS_COLLECTIVE_TIMEOUT"]) == ("INFO", "240")  # the site's own win
