"""`harness run` answers first: a few lines under 100 columns with what the model scored and
against what, before the table of details."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from harness.run.summary import headline, print_run_summary

EVAL = {"reference/bigram": 4.2865, "reference/unigram": 6.7187, "position/loss_mean": 4.6672, "position/documents": 128,
        "humaneval/pass_at_1": 0.0122,
        "humaneval/problems": 164, "mbpp/pass_at_1": 0.0, "mbpp/problems": 500,
        "nll/humaneval/bits_per_byte": 2.2412, "nll/mbpp/bits_per_byte": 3.5156,
        "acceptance/depth_2/agree_greedy": 0.6695, "acceptance/depth_2/correct": 0.2197}


def outcome(evaluate=None, val=None):
    summary = {"train": {"step": 250, "val": val if val is not None else {"val/depth_1": 4.4714, "val/depth_2": 4.4953}}}
    if evaluate is not None:
        summary["evaluate"] = {"summary": evaluate}
    return SimpleNamespace(summary=summary, run_dir=Path("runs/deepseek_n2-da69559b8bbf"), status="finished")


def test_the_headline_gives_each_score_beside_its_reference():
    lines = headline(outcome(EVAL))
    assert lines == [
        "validation loss 4.471 nats (next token); depth 2 4.495",
        "on 128 held-out documents: the model 4.667 nats, count-based bigram 4.287, unigram 6.719",
        "pass@1: HumanEval 1.2% of 164, MBPP 0.0% of 500",
        "canonical-solution NLL, bits per byte: HumanEval 2.24, MBPP 3.52",
        "MTP depth 2 agrees with greedy next-token decoding 67%, is correct 22%",
    ]
    assert all(len(line) < 100 for line in lines)


def test_a_run_without_evaluation_says_only_what_it_has():
    assert headline(outcome(None, {"val/depth_1": 5.0})) == ["validation loss 5.000 nats (next token)"]
    assert "COLLAPSED" in headline(outcome({"collapse/flagged": 1}))[-1]
    # references without the model's loss on the same rows would compare different rows: not shown
    assert not any("count-based" in line for line in headline(outcome({"reference/unigram": 6.7})))


def test_the_headline_comes_before_the_table():
    buffer = io.StringIO()
    print_run_summary(outcome(EVAL), Console(file=buffer, width=100))
    text = buffer.getvalue()
    assert text.index("validation loss 4.471") < text.index("run deepseek_n2-da69559b8bbf: finished")
