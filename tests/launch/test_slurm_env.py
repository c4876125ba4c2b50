"""Ranks, world size and master address derived from Slurm's variables, as srun sets them."""

import os
import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.launch.slurm_env import expand_hostlist, rank_env_from_slurm, tasks_per_node
from tests.conftest import RANK_VARS


@pytest.mark.parametrize("hostlist, hosts", [
    ("gpu[01-03,7],cpu5", ["gpu01", "gpu02", "gpu03", "gpu7", "cpu5"]),
    ("node1", ["node1"]),
    ("a[8-11]", ["a8", "a9", "a10", "a11"]),
    ("a[08-11]", ["a08", "a09", "a10", "a11"]),
    ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
    ("x[1,3],y[001-002],z", ["x1", "x3", "y001", "y002", "z"]),
    ("gpu-a100-[1-2].cluster", ["gpu-a100-1.cluster", "gpu-a100-2.cluster"]),
])
def test_expand_hostlist(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


@pytest.mark.parametrize("bad", ["gpu[01-03", "gpu01]", "gpu[3-1]", "gpu[a-b]"])
def test_bad_hostlists_are_errors(bad):
    with pytest.raises(HarnessError, match="hostlist"):
        expand_hostlist(bad)


def test_tasks_per_node():
    assert tasks_per_node("4(x2),3") == [4, 4, 3]
    assert tasks_per_node("8") == [8]
    with pytest.raises(HarnessError):
        tasks_per_node("4(2)")


def _task(procid: int, nodeid: int, localid: int, **extra) -> dict[str, str]:
    """What srun sets for task `procid` of a 3-node, 4+4+2-task step."""
    env = {
        "SLURM_JOB_ID": "123457", "SLURM_STEP_ID": "0", "SLURM_PROCID": str(procid),
        "SLURM_LOCALID": str(localid), "SLURM_NODEID": str(nodeid), "SLURM_NTASKS": "10",
        "SLURM_JOB_NODELIST": "gpu[07-08],gpu10", "SLURM_TASKS_PER_NODE": "4(x2),2",
    }
    env.update(extra)
    return env


def test_rank_env_of_every_task_in_a_step():
    layout = [(node, local) for node, count in enumerate([4, 4, 2]) for local in range(count)]
    envs = [rank_env_from_slurm(_task(rank, node, local)) for rank, (node, local) in enumerate(layout)]
    assert [e["RANK"] for e in envs] == [str(r) for r in range(10)]
    assert {e["WORLD_SIZE"] for e in envs} == {"10"}
    assert {e["MASTER_ADDR"] for e in envs} == {"gpu07"}
    assert len({e["MASTER_PORT"] for e in envs}) == 1
    assert [e["LOCAL_WORLD_SIZE"] for e in envs] == ["4"] * 8 + ["2"] * 2
    assert [e["NODE_RANK"] for e in envs] == ["0"] * 4 + ["1"] * 4 + ["2"] * 2
    assert envs[9]["LOCAL_RANK"] == "1"
    assert set(envs[0]) == {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK",
                            "MASTER_ADDR", "MASTER_PORT"}


def test_port_follows_the_job_id_and_stays_below_the_ephemeral_range():
    ports = {int(rank_env_from_slurm(_task(0, 0, 0, SLURM_JOB_ID=str(j)))["MASTER_PORT"]) for j in range(1, 500, 7)}
    assert len(ports) > 60 and all(10000 <= p < 30000 for p in ports)


def test_step_variables_win_and_user_choices_are_kept():
    env = _task(1, 0, 1, SLURM_STEP_NODELIST="gpu10", SLURM_STEP_NUM_TASKS="2", SLURM_STEP_TASKS_PER_NODE="2")
    ranks = rank_env_from_slurm(env)
    assert (ranks["MASTER_ADDR"], ranks["WORLD_SIZE"], ranks["LOCAL_WORLD_SIZE"]) == ("gpu10", "2", "2")
    ranks = rank_env_from_slurm({**env, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"})
    assert (ranks["MASTER_ADDR"], ranks["MASTER_PORT"]) == ("10.0.0.1", "29500")


def test_missing_or_inconsistent_slurm_environment_is_a_clear_error():
    env = _task(0, 0, 0)
    del env["SLURM_PROCID"]
    with pytest.raises(HarnessError, match="SLURM_PROCID is not set"):
        rank_env_from_slurm(env)
    with pytest.raises(HarnessError, match="inconsistent"):
        rank_env_from_slurm(_task(10, 2, 0))
    with pytest.raises(HarnessError, match="inconsistent"):
        rank_env_from_slurm(_task(9, 2, 2))


def test_module_execs_the_command_with_the_rank_environment():
    # A task's environment has no rank variables of its own (an earlier test's process group may
    # have left some in this process's).
    env = {**{k: v for k, v in os.environ.items() if k not in RANK_VARS}, **_task(5, 1, 1), "SLURM_CPUS_PER_TASK": "3"}
    env.pop("OMP_NUM_THREADS", None)
    code = "import os; print(*(os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'OMP_NUM_THREADS')))"
    out = subprocess.run([sys.executable, "-m", "harness.launch.slurm_env", sys.executable, "-c", code],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["5", "10", "gpu07", "3"]
