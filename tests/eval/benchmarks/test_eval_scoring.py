"""Completions to rows and pass@k: verdicts against an independent oracle, samples files, resume.

The oracle is each benchmark's own evaluation as upstream runs it: one program (HumanEval:
prompt + completion + test + `check(entry_point)`; MBPP: completion + setup + asserts) in a
plain interpreter, its exit status the verdict. The harness splits that program across the
sandbox and a checker instead, so agreement on right, wrong and subtly wrong solutions is
evidence, not a restatement of the code.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.eval.benchmarks import programs, scoring

HE0 = programs.problems("humaneval")["HumanEval/0"]
MUTATIONS = [("<", "<="), ("+ 1", "+ 2"), ("==", "!="), ("[1:]", "[2:]"), ("range(1", "range(2"), (" - ", " + "),
             (">", ">="), ("max(", "min("), ("True", "False"), ("sorted(", "list(")]  # fmt: skip


def upstream_program(task: str, problem: dict, completion: str) -> str:
    """The program the benchmark's own evaluation runs (human-eval execution.py; MBPP paper)."""
    if task == "humaneval":
        return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})\n"
    return "\n".join([completion, problem["test_setup_code"], *problem["test_list"]]) + "\n"


def oracle_passes(task: str, problem: dict, completion: str) -> bool:
    """Trusted inputs only (canonical solutions and mutations of them), so no sandbox."""
    try:
        done = subprocess.run([sys.executable, "-c", upstream_program(task, problem, completion)],
                              capture_output=True, timeout=10)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def mutants(task: str, count: int) -> list[tuple]:
    """(problem, completion): canonical solutions and single-edit mutations of them."""
    chosen = []
    for problem in programs.reference_problems(task)[:count]:
        code = programs.reference_completion(task, problem)
        chosen.append((problem, code))
        chosen += [(problem, code.replace(old, new, 1)) for old, new in MUTATIONS if old in code][:2]
    return chosen


@pytest.mark.parametrize("task", ["humaneval", "mbpp"])
def test_verdicts_agree_with_the_benchmarks_own_evaluation(task, any_sandbox):
    cases = mutants(task, 16)
    rows = scoring.execute(task, [(p["task_id"], i, c) for i, (p, c) in enumerate(cases)], any_sandbox)
    ours = [row["status"] == "passed" for row in rows]
    theirs = [oracle_passes(task, p, c) for p, c in cases]
    disagree = [(p["task_id"], c, row["reason"]) for (p, c), a, b, row in zip(cases, ours, theirs, rows) if a != b]
    assert not disagree
    assert sum(theirs) >= 16 and len(theirs) - sum(theirs) >= 8  # both verdicts are exercised


def test_task_ids_are_normalised_and_checked():
    assert programs.task_id_of("humaneval", "HumanEval/3") == "HumanEval/3"
    assert programs.task_id_of("mbpp", "Mbpp/11") == programs.task_id_of("mbpp", "11") == programs.task_id_of("mbpp", 11) == 11
    with pytest.raises(HarnessError, match="'HumanEval/999' is not a humaneval problem"):
        programs.task_id_of("humaneval", "HumanEval/999")
    with pytest.raises(HarnessError, match="task_id 3 is not a HumanEval id"):
        programs.task_id_of("humaneval", 3)  # once silently read as HumanEval/3
    with pytest.raises(HarnessError, match=r"task_id \[11\] is not an MBPP id"):
        programs.task_id_of("mbpp", [11])


def test_jobs_keep_test_code_out_of_the_sandbox():
    job = programs.build_job("humaneval", HE0, "    return 1\n")
    assert job.program == HE0["prompt"] + "    return 1\n" and HE0["test"] not in job.program
    assert job.tests == HE0["test"] and job.call == ("check", "has_close_elements")
    mbpp367 = programs.problems("mbpp")[367]
    job = programs.build_job("mbpp", mbpp367, "pass")
    assert mbpp367["test_setup_code"] in job.program and not any(t in job.program for t in mbpp367["test_list"])


def write_samples(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"task_id": 11, "completion": ""}\n{"x": 1}\n', r"s.jsonl:2: not a sample"),
        (b'{"task_id": 0, "completion": ""}\n', r"s.jsonl:1: task_id 0 is not a mbpp problem"),
        (b'{"task_id": [11], "completion": ""}\n', r"s.jsonl:1: task_id \[11\] is not an MBPP id"),
        (b'\n{"task_id": 11, "completion": "caf\xe9"}\n', r"s.jsonl:2: not UTF-8 \(byte 0xe9 at column 35\)"),
        (b'{"task_id": 11, "completion": 5}\n', r"s.jsonl:1: completion must be a string"),
        (b'{"task_id": 11, "completion": "x"\n', r"s.jsonl:1: not JSON"),
        (b"\n\n", r"has no samples"),
    ],
)
def test_bad_samples_files_name_file_line_and_fault(tmp_path, content, message):
    (tmp_path / "s.jsonl").write_bytes(content)
    with pytest.raises(HarnessError, match=message):
        scoring._check_samples(tmp_path / "s.jsonl", "mbpp", tmp_path / "out.jsonl", {})


def test_a_line_separator_inside_a_completion_is_text(tmp_path):
    """JSON allows a raw U+2028 in a string; it once split the line ("not a sample line")."""
    path = tmp_path / "s.jsonl"
    path.write_text('{"task_id": 11, "completion": "x = 1\u2028"}\n', encoding="utf-8")
    assert [s[:2] for s in scoring.iter_samples(path, "mbpp")] == [(11, 0)]


class Counting:
    """A sandbox that counts the jobs it is given (and refuses any when told to)."""

    def __init__(self, real, allowed: bool = True):
        self.real, self.allowed, self.jobs = real, allowed, 0

    def run_many(self, jobs):
        for outcome in self.real.run_many(self._count(jobs)):
            yield outcome

    def _count(self, jobs):
        for job in jobs:
            assert self.allowed, "a program ran before the samples file was checked"
            self.jobs += 1
            yield job


def test_a_bad_line_is_reported_before_any_program_runs(tmp_path, any_sandbox):
    lines = [{"task_id": 11, "completion": "x = 1"}] * 3 + [{"task_id": 11}]
    with pytest.raises(HarnessError, match=r"s.jsonl:4: not a sample"):
        scoring.score_file(write_samples(tmp_path / "s.jsonl", lines), "mbpp", Counting(any_sandbox, False),
                           tmp_path / "out.jsonl")  # fmt: skip


def test_a_killed_scoring_resumes_where_it_stopped(tmp_path, any_sandbox):
    right = programs.problems("mbpp")[11]["code"]
    samples = write_samples(tmp_path / "s.jsonl", [{"task_id": 11, "completion": c} for c in (right, "x = 1") * 3])
    out = tmp_path / "out.jsonl"
    full = scoring.score_file(samples, "mbpp", any_sandbox, out, ks=[1])
    rows = out.read_text().splitlines()
    out.write_text("\n".join(rows[:2]) + "\n" + rows[2][:25])  # killed while writing the third row
    counting = Counting(any_sandbox)
    resumed = scoring.score_file(samples, "mbpp", counting, out, ks=[1])
    assert counting.jobs == 4 and resumed["resumed"] == 2
    assert out.read_text().splitlines() == rows
    assert {k: v for k, v in resumed.items() if k != "resumed"} == {k: v for k, v in full.items() if k != "resumed"}
    again = Counting(any_sandbox)
    scoring.score_file(samples, "mbpp", again, out, ks=[1])
    assert again.jobs == 0  # finished: nothing to run


def test_rows_of_other_samples_are_refused_on_resume(tmp_path, any_sandbox):
    out = tmp_path / "out.jsonl"
    scoring.score_file(write_samples(tmp_path / "a.jsonl", [{"task_id": 11, "completion": "x = 1"}]), "mbpp",
                       any_sandbox, out)  # fmt: skip
    with pytest.raises(HarnessError, match="holds a row for 11 sample 0 with another completion"):
        scoring.score_file(write_samples(tmp_path / "b.jsonl", [{"task_id": 11, "completion": "x = 2"}]), "mbpp",
                           any_sandbox, out)  # fmt: skip


def test_score_file_counts_samples_per_problem(tmp_path, any_sandbox):
    he1 = programs.problems("humaneval")["HumanEval/1"]
    samples = write_samples(
        tmp_path / "samples.jsonl",
        [
            {"task_id": "HumanEval/0", "completion": HE0["canonical_solution"]},
            {"task_id": "HumanEval/0", "completion": "    return False\n"},
            {"task_id": "HumanEval/1", "completion": "    return []\n"},
            {"task_id": "HumanEval/1", "completion": he1["canonical_solution"] + "\n    import sys\n    sys.exit(0)\n"},
        ],
    )
    out = tmp_path / "rows.jsonl"
    summary = scoring.score_file(samples, "humaneval", any_sandbox, out, ks=[1, 2, 10])
    assert summary["pass_at_1"] == pytest.approx(0.5) and summary["pass_at_2"] == pytest.approx(1.0)
    assert "pass_at_10" not in summary  # undefined with 2 samples per problem
    assert (summary["problems"], summary["samples"], summary["passed"], summary["failed"]) == (2, 4, 2, 2)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["task_id"], r["sample"], r["status"]) for r in rows] == [
        ("HumanEval/0", 0, "passed"), ("HumanEval/0", 1, "failed"), ("HumanEval/1", 0, "failed"), ("HumanEval/1", 1, "passed")
    ]  # fmt: skip
    assert set(rows[0]) == {"task_id", "sample", "completion", "status", "reason"}


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
    assert "sandbox bwrap: verdicts: decided by a checker outside the sandbox" in result.output or "sandbox unshare" in result.output
    assert len((tmp_path / "mine_results.jsonl").read_text().splitlines()) == 2


def test_cli_score_bad_input_is_one_line(cli, tmp_path):
    (tmp_path / "s.jsonl").write_bytes(b'{"task_id": "HumanEval/0", "completion": "\xff"}\n')
    result = cli("eval", "score", tmp_path / "s.jsonl", "--task", "humaneval")
    assert result.exit_code == 2 and "s.jsonl:1: not UTF-8" in result.output and "Traceback" not in result.output
    result = cli("eval", "score", write_samples(tmp_path / "t.jsonl", [{"task_id": 11, "completion": ""}]), "--task", "mbpp", "--k", "one")
    assert result.exit_code == 2 and "--k 'one' is not a comma-separated list" in result.output


@pytest.mark.slow
def test_reference_solutions_all_pass(cli, default_sandbox):
    """Done-when: HumanEval 164/164, MBPP test 500/500, and every problem of MBPP (974) and
    sanitized MBPP (427), all checked outside the program."""
    result = cli("eval", "reference", "--tasks", "humaneval,mbpp")
    assert result.exit_code == 0, result.output
    assert "humaneval: 164/164 canonical solutions pass" in result.output
    assert "mbpp: 500/500 canonical solutions pass" in result.output
    result = cli("eval", "reference", "--tasks", "mbpp,mbpp_sanitized", "--split", "all")
    assert result.exit_code == 0, result.output
    assert "mbpp: 974/974 canonical solutions pass" in result.output
    assert "mbpp_sanitized: 427/427 canonical solutions pass" in result.output


@pytest.mark.slow
def test_full_wrong_answer_sets_score_zero(cli, tmp_path, default_sandbox):
    he = [{"task_id": p["task_id"], "completion": "    return None\n"} for p in programs.reference_problems("humaneval")]
    mbpp = [{"task_id": p["task_id"], "completion": "def f():\n    pass\n"} for p in programs.reference_problems("mbpp")]
    for task, records, total in (("humaneval", he, 164), ("mbpp", mbpp, 500)):
        result = cli("eval", "score", write_samples(tmp_path / f"{task}.jsonl", records), "--task", task, "--k", "1")
        assert result.exit_code == 0, result.output
        assert f"{task}: pass@1 0.0 over {total} of {total} problems" in result.output
