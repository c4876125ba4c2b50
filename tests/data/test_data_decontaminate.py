"""Decontamination drops documents that share a 13-word n-gram with HumanEval or MBPP and
says which tasks matched; idioms and counting sequences do not count as leaks."""

from __future__ import annotations

from harness.data.benchmarks import humaneval, mbpp
from harness.data.config import Decontamination
from harness.data.decontaminate import Decontaminator, code_words
from tests.data.data_helpers import code_file, local_config, write_corpus


def test_planted_humaneval_solution_is_removed_from_a_prepared_corpus(tmp_path):
    from harness.data.prepare import prepare_data

    problem = humaneval()[0]
    folder = write_corpus(tmp_path / "corpus", n_files=20)
    planted = code_file(500) + "\n\n" + problem["prompt"] + problem["canonical_solution"] + "\n"
    (folder / "leaky.py").write_text(planted)
    prepared = prepare_data(local_config(folder), vocab_size=300, seq_len=16, base_dir=tmp_path,
                            cache_root=tmp_path / "cache")
    report = prepared.decontamination
    assert report["documents_checked"] == 21 and report["documents_dropped"] == 1
    assert report["dropped_by_benchmark"] == {"humaneval": 1}
    (item,) = report["dropped"]
    assert item["document"] == "leaky.py" and problem["task_id"] in item["tasks"]
    assert prepared.manifest["decontamination"]["documents_dropped"] == 1
    kept = sum(prepared.manifest["splits"][s]["documents"] for s in ("train", "val"))
    assert kept == 20


def test_reformatted_solution_and_mbpp_tests_are_caught():
    checker = Decontaminator(Decontamination())
    solution = humaneval()[2]["prompt"] + humaneval()[2]["canonical_solution"]
    reflowed = " ".join(solution.split())  # layout changes do not hide a copy
    assert not checker.keep("reflowed.py", reflowed)
    task = mbpp()[20]
    assert not checker.keep("tests.py", "import x\n" + "\n".join(task["test_list"]) + "\n")
    assert checker.report.dropped[1]["tasks"] == [f"mbpp/{task['task_id']}"]
    assert checker.report.summary()["dropped_by_benchmark"] == {"humaneval": 1, "mbpp": 1}


def test_idioms_and_counting_sequences_are_not_leaks():
    checker = Decontaminator(Decontamination())
    idioms = "for j in range(i + 1, len(items)):\n    pass\nx = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]\n"
    assert checker.keep("idioms.py", idioms) and checker.keep("module.py", code_file(3))
    assert checker.report.documents_checked == 2 and checker.report.dropped == []


def test_shorter_ngrams_catch_more_and_disabled_catches_nothing():
    text = humaneval()[0]["prompt"]
    words = code_words(text)
    window = " ".join(words[5:15])  # a 10-word slice of the problem statement
    assert Decontaminator(Decontamination(ngram=13)).keep("a", window)
    assert not Decontaminator(Decontamination(ngram=10)).keep("a", window)
    off = Decontaminator(Decontamination(enabled=False))
    assert off.keep("a", text) and off.report.summary()["documents_checked"] == 0


def test_benchmarks_can_be_chosen():
    solution = humaneval()[0]["prompt"] + humaneval()[0]["canonical_solution"]
    assert Decontaminator(Decontamination(benchmarks=["mbpp"])).keep("a", solution)
    assert not Decontaminator(Decontamination(benchmarks=["humaneval"])).keep("a", solution)
