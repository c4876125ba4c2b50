"""Completions to rows and pass@k: samples files, canonical solutions, wrong answers."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.eval import programs, scoring

HE0 = programs.problems("humaneval")["HumanEval/0"]
HE1 = programs.problems("humaneval")["HumanEval/1"]


def write_samples(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_task_ids_are_normalised():
    assert programs.task_id_of("humaneval", "HumanEval/3") == "HumanEval/3"
    assert programs.task_id_of("humaneval", 3) == "HumanEval/3"
    assert programs.task_id_of("mbpp", "Mbpp/11") == programs.task_id_of("mbpp", "11") == 11
    with pytest.raises(HarnessError, match="'HumanEval/999' is not a humaneval problem"):
        programs.task_id_of("humaneval", "HumanEval/999")


def test_programs_follow_the_benchmarks_own_layout():
    program = programs.build_program("humaneval", HE0, "    return 1\n")
    assert program.startswith(HE0["prompt"] + "    return 1\n\n" + HE0["test"])
    assert program.rstrip().endswith("check(has_close_elements)")
    mbpp367 = programs.problems("mbpp")[367]
    assert mbpp367["test_setup_code"].strip() in programs.build_program("mbpp", mbpp367, "pass")


def test_bad_sample_lines_are_refused(tmp_path):
    with pytest.raises(HarnessError, match="samples.jsonl:2: not a sample line"):
        scoring.read_samples(write_samples(tmp_path / "samples.jsonl", [{"task_id": 11, "completion": ""}, {"x": 1}]), "mbpp")
    with pytest.raises(HarnessError, match="s.jsonl:1: task_id 0 is not a mbpp problem"):
        scoring.read_samples(write_samples(tmp_path / "s.jsonl", [{"task_id": 0, "completion": ""}]), "mbpp")
    with pytest.raises(HarnessError, match="does not exist"):
        scoring.read_samples(tmp_path / "missing.jsonl", "mbpp")


def test_score_file_counts_samples_per_problem(tmp_path, any_sandbox):
    samples = write_samples(
        tmp_path / "samples.jsonl",
        [
            {"task_id": "HumanEval/0", "completion": HE0["canonical_solution"]},
            {"task_id": "HumanEval/0", "completion": "    return False\n"},
            {"task_id": "HumanEval/1", "completion": "    return []\n"},
            {"task_id": "HumanEval/1", "completion": "    import sys\n    sys.exit(0)\n"},
        ],
    )
    out = tmp_path / "rows.jsonl"
    summary = scoring.score_file(samples, "humaneval", any_sandbox, out, ks=[1, 2, 10])
    assert summary["pass_at_1"] == pytest.approx(0.25) and summary["pass_at_2"] == pytest.approx(0.5)
    assert "pass_at_10" not in summary  # undefined with 2 samples per problem
    assert (summary["problems"], summary["samples"], summary["passed"], summary["failed"]) == (2, 4, 1, 3)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["task_id"], r["sample"], r["status"]) for r in rows] == [
        ("HumanEval/0", 0, "passed"), ("HumanEval/0", 1, "failed"), ("HumanEval/1", 0, "failed"), ("HumanEval/1", 1, "failed")
    ]  # fmt: skip
    assert set(rows[0]) == {"task_id", "sample", "completion", "status", "reason"}
    assert rows[3]["reason"] == "exited with status 0 before the tests finished"


def test_wrong_answers_score_zero_on_a_slice(any_sandbox):
    he = [(p["task_id"], 0, "    return None\n") for p in programs.reference_problems("humaneval")[:12]]
    mbpp = [(p["task_id"], 0, "def solution():\n    return None\n") for p in programs.reference_problems("mbpp")[:12]]
    assert scoring.summarize(scoring.execute("humaneval", he, any_sandbox))["pass_at_1"] == 0.0
    assert scoring.summarize(scoring.execute("mbpp", mbpp, any_sandbox))["pass_at_1"] == 0.0


def test_canonical_solutions_pass_on_a_slice(any_sandbox):
    for task in ("humaneval", "mbpp", "mbpp_sanitized"):
        chosen = programs.reference_problems(task)[:8]
        samples = [(p["task_id"], 0, programs.reference_completion(task, p)) for p in chosen]
        assert scoring.summarize(scoring.execute(task, samples, any_sandbox))["passed"] == 8, task


def test_cli_score(cli, tmp_path, default_sandbox):
    samples = write_samples(
        tmp_path / "mine.jsonl",
        [{"task_id": "Mbpp/11", "completion": programs.problems("mbpp")[11]["code"]}, {"task_id": 12, "completion": "x = 1"}],
    )
    result = cli("eval", "score", samples, "--task", "mbpp", "--k", "1")
    assert result.exit_code == 0, result.output
    assert "mbpp: pass@1 50.0 over 2 of 500 problems" in result.output
    assert len((tmp_path / "mine_results.jsonl").read_text().splitlines()) == 2


def test_cli_score_rejects_a_bad_k(cli, tmp_path):
    result = cli("eval", "score", write_samples(tmp_path / "s.jsonl", [{"task_id": 11, "completion": ""}]), "--task", "mbpp", "--k", "one")
    assert result.exit_code == 2 and "--k 'one' is not a comma-separated list" in result.output


@pytest.mark.slow
def test_reference_solutions_all_pass(cli, default_sandbox):
    """Done-when: HumanEval 164/164 and MBPP test 500/500 through the same sandbox path."""
    result = cli("eval", "reference", "--tasks", "humaneval,mbpp")
    assert result.exit_code == 0, result.output
    assert "humaneval: 164/164 canonical solutions pass" in result.output
    assert "mbpp: 500/500 canonical solutions pass" in result.output


@pytest.mark.slow
def test_full_wrong_answer_sets_score_zero(cli, tmp_path, default_sandbox):
    he = [{"task_id": p["task_id"], "completion": "    return None\n"} for p in programs.reference_problems("humaneval")]
    mbpp = [{"task_id": p["task_id"], "completion": "def f():\n    pass\n"} for p in programs.reference_problems("mbpp")]
    for task, records, total in (("humaneval", he, 164), ("mbpp", mbpp, 500)):
        result = cli("eval", "score", write_samples(tmp_path / f"{task}.jsonl", records), "--task", task, "--k", "1")
        assert result.exit_code == 0, result.output
        assert f"{task}: pass@1 0.0 over {total} of {total} problems" in result.output
