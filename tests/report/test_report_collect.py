"""Reading run directories: per-problem outcomes behind greedy and sampled pass@k, and the
refusal of directories that are not finished runs."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.eval.benchmarks.passk import pass_at_k
from harness.report.collect import load_run
from tests.report.report_helpers import make_run


def test_greedy_outcomes_are_one_or_zero_per_problem(tmp_path):
    run = load_run(make_run(tmp_path, "stp", "stp", outcomes={"mbpp": [1, 0, 1]}))
    assert run.outcomes("mbpp/pass_at_1") == {11: 1.0, 12: 0.0, 13: 1.0}
    assert run.metrics() == {"mbpp/pass_at_1": pytest.approx(2 / 3)}
    assert run.arm == "stp" and run.seed == 0 and run.kind == "stp"


def test_sampled_outcomes_use_the_headline_temperature(tmp_path):
    run_dir = make_run(tmp_path, "meta_n2", "meta")
    passed = {"HumanEval/0": 1, "HumanEval/1": 3}  # of 4 samples each, at t=0.8
    rows = [{"task_id": tid, "sample": i, "completion": "", "reason": "", "status": "passed" if i < c else "failed"}
            for tid, c in passed.items() for i in range(4)]
    (run_dir / "eval" / "humaneval_t0.8.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "eval" / "humaneval_t0.2.jsonl").write_text("")  # the losing temperature is not read
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    summary.update({"humaneval/pass_at_1": 0.5, "humaneval/pass_at_1_temperature": 0.8, "humaneval/pass_at_2": 0.75,
                    "humaneval/pass_at_2_temperature": 0.8, "humaneval/pass_at_1_t0.8": 0.5})
    (run_dir / "eval" / "summary.json").write_text(json.dumps(summary))
    run = load_run(run_dir)
    assert set(run.metrics()) == {"humaneval/pass_at_1", "humaneval/pass_at_2"}
    assert run.outcomes("humaneval/pass_at_2") == {tid: pass_at_k(4, c, 2) for tid, c in passed.items()}
    assert run.outcomes("humaneval/pass_at_1") == {"HumanEval/0": 0.25, "HumanEval/1": 0.75}
    summary["humaneval/pass_at_8"], summary["humaneval/pass_at_8_temperature"] = 1.0, 0.8
    (run_dir / "eval" / "summary.json").write_text(json.dumps(summary))
    assert load_run(run_dir).outcomes("humaneval/pass_at_8") is None  # k above the samples drawn


def test_directories_that_are_not_finished_runs_are_refused(tmp_path):
    with pytest.raises(HarnessError, match="not a harness run directory"):
        load_run(tmp_path)
    run_dir = make_run(tmp_path, "stp", "stp")
    stages = json.loads((run_dir / "stages.json").read_text())
    del stages["train"]
    (run_dir / "stages.json").write_text(json.dumps(stages))
    with pytest.raises(HarnessError, match="has not finished"):
        load_run(run_dir)
