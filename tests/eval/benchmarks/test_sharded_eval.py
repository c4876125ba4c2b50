"""HumanEval/MBPP shared by the ranks of a process group: two CPU processes (gloo) give the
rows of one, every problem keeps exactly its samples although lm-eval pads the smaller
rank's requests, and rank 0 alone writes. Also: the model sits on the device it is asked
for (not one HFLM picks), and which evaluations may be shared at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.eval.benchmarks.evaluate import evaluate_model, shards_over
from harness.eval.config import EvalConfig
from harness.threads import torch_threads
from tests.conftest import RANK_VARS

WORKER = """\
import json, sys
from pathlib import Path

import torch.distributed as td

td.init_process_group("gloo")
from harness.eval.benchmarks.evaluate import evaluate_model
from harness.eval.config import EvalConfig

cfg = EvalConfig.model_validate(json.loads(sys.argv[3]))
summary = evaluate_model(Path(sys.argv[1]), cfg, Path(sys.argv[2]), shard=True)
print(f"rank {td.get_rank()} returned {'a summary' if summary else 'nothing'}", flush=True)
td.destroy_process_group()
"""


def _config(**fields) -> EvalConfig:
    # workers=2: two sandboxes on a 2-core machine; num_threads=1: what the rows must not depend on
    base = {"tasks": ["humaneval", "mbpp"], "batch_size": 2, "max_gen_toks": 48, "num_threads": 1,
            "sandbox": {"workers": 2}}
    return EvalConfig.model_validate(base | fields)


def _two_ranks(model_dir: Path, cfg: EvalConfig, out: Path, tmp_path: Path) -> str:
    worker = tmp_path / "shard_worker.py"
    worker.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARS} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
         str(model_dir), str(out), cfg.model_dump_json()],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_give_the_greedy_rows_of_one(tiny_model, tmp_path):
    # 7 problems: rank 0 gets 4, rank 1 gets 3 and is padded with a copy of its last request
    cfg = _config(limit=7, max_gen_toks=16)  # a random model: its completions differ, and never stop
    with torch_threads(1):
        one = evaluate_model(tiny_model, cfg, tmp_path / "one")
    output = _two_ranks(tiny_model, cfg, tmp_path / "two", tmp_path)
    assert "rank 0 returned a summary" in output and "rank 1 returned nothing" in output
    completions = set()
    for task in ("humaneval", "mbpp"):
        single, shared = _rows(tmp_path / "one" / f"{task}_greedy.jsonl"), _rows(tmp_path / "two" / f"{task}_greedy.jsonl")
        assert len(shared) == 7
        assert shared == single, task  # rows name their problem: an order mixed by the ranks fails too
        completions |= {row["completion"] for row in shared}
    assert len(completions) > 1, completions  # a model whose completions differ between problems
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["ranks"] == 2 and one["ranks"] == 1
    assert {k: v for k, v in two.items() if "/" in k} == {k: v for k, v in one.items() if "/" in k}
    assert two["humaneval/problems"] == 7


@pytest.mark.slow
def test_sampled_problems_keep_exactly_their_samples_when_shared(code_model, tmp_path):
    cfg = _config(tasks=["humaneval"], protocol="sampled", n_samples=3, temperatures=[0.8], ks=[1, 2], limit=5,
                  max_gen_toks=24)
    _two_ranks(code_model, cfg, tmp_path / "two", tmp_path)
    rows = _rows(tmp_path / "two" / "humaneval_t0.8.jsonl")
    per_problem = {}
    for row in rows:
        per_problem[row["task_id"]] = per_problem.get(row["task_id"], 0) + 1
    assert per_problem == {f"HumanEval/{i}": 3 for i in range(5)}  # padding adds no sample
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["ranks"] == 2


def test_the_model_sits_on_the_device_asked_for(tiny_model):
    """HFLM given a path keeps only devices it knows (else the CPU, or Accelerate's choice
    under a launcher); the harness loads the model itself. `meta` stands in for a GPU."""
    from harness.eval.benchmarks.lmeval import load_model

    lm = load_model(tiny_model, EvalConfig(), device="meta", context=64)
    assert lm.device.type == "meta"
    assert {p.device.type for p in lm.model.parameters()} == {"meta"}
    assert (lm.rank, lm.world_size) == (0, 1) and lm.pretrained == str(tiny_model)


def test_which_evaluations_the_ranks_can_share():
    assert not shards_over(EvalConfig(), 1)
    assert shards_over(EvalConfig(), 8)
    assert not shards_over(EvalConfig(backend="vllm"), 8)  # vllm runs its own data parallel
    assert not shards_over(EvalConfig(limit=3), 4)  # a rank without problems would miss collectives
    assert shards_over(EvalConfig(limit=4), 4)
    assert not shards_over(EvalConfig(tasks=["humaneval"]), 165)  # HumanEval has 164
    assert not shards_over(EvalConfig(enabled=False), 8)


def test_a_sharded_call_that_cannot_be_shared_is_refused(tmp_path, monkeypatch):
    from harness import ranks
    from harness.errors import HarnessError

    monkeypatch.setattr(ranks, "group_size", lambda: (0, 4))
    with pytest.raises(HarnessError, match="4 ranks cannot share this evaluation"):
        evaluate_model(tmp_path, EvalConfig(limit=2), tmp_path / "out", shard=True)


def test_each_rank_on_a_node_runs_its_share_of_sandbox_workers(monkeypatch):
    from harness.eval.sandbox import runner

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert runner.default_workers() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # eight ranks on the node, eight sandboxes
    assert runner.default_workers() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert runner.default_workers() == 1


@pytest.mark.slow
def test_harness_eval_under_a_launcher_shares_the_problems(tiny_model, tmp_path):
    """`torchrun ... harness eval MODEL`: the ranks split the problems (not every rank scoring
    everything into the same files), and the rows are one process's."""
    common = ["eval", "run", str(tiny_model), "--limit", "5", "--max-gen-toks", "16", "--batch-size", "2",
              "--threads", "1", "--workers", "1", "--no-analysis"]
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARS} | {"OMP_NUM_THREADS": "1",
                                                                         "MTP_HARNESS_DEVICE": "cpu"}
    one = subprocess.run([sys.executable, "-m", "harness", *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stdout + one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "harness", *common, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stdout + two.stderr
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["ranks"] == 2
    for task in ("humaneval", "mbpp"):
        assert (tmp_path / "two" / f"{task}_greedy.jsonl").read_text() == (tmp_path / "one" / f"{task}_greedy.jsonl").read_text()
    assert two.stdout.count("per-sample rows and summary.json in") == 1  # one report, from rank 0


def test_harness_eval_under_a_launcher_refuses_what_it_cannot_share(cli, tiny_model, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    result = cli("eval", "run", str(tiny_model), "--limit", "2", "--no-analysis")
    assert result.exit_code == 2, result.output + result.stderr
    assert "4 ranks cannot share this evaluation" in result.stderr and "without a launcher" in result.stderr
