"""Canonical-solution NLL against a one-problem-at-a-time oracle (no batching, no padding)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from harness.eval.analyses.canonical_nll import encode_pair, solution_nll, summarize
from tests.eval.mtp_models import VOCAB, objective, random_model


class CharTokenizer:
    """One token per character (id = code point mod V): the split is easy to check by hand."""

    def encode(self, text: str, add_special_tokens: bool = False):
        return SimpleNamespace(ids=[ord(c) % VOCAB for c in text])


PAIRS = [("a", "def f(x):\n", "    return x\n"), ("b", "short  ", "pass"), ("c", "q" * 40, "z" * 5),
         ("d", "p", "y" * 30)]


def oracle(model, prompt: list[int], target: list[int], context: int) -> float:
    ids = (prompt + target)[-(context + 1):]
    with torch.no_grad():
        logits = model.next_token_logits(torch.tensor([ids[:-1]]))[0].double()
    logp = torch.log_softmax(logits, -1)
    first = len(ids) - 1 - len(target)
    return -sum(logp[first + j, t].item() for j, t in enumerate(target))


@pytest.mark.parametrize("context", [64, 16])
def test_batched_nll_equals_the_oracle(one_thread, context):
    model, tok = random_model(objective("stp")), CharTokenizer()
    rows = {r["task_id"]: r for r in solution_nll(model, tok, PAIRS, context, batch_size=3)}
    assert set(rows) == ({"a", "b", "c", "d"} if context == 64 else {"a", "b", "c"})  # 30 tokens do not fit 16
    for task_id, prompt, solution in PAIRS:
        if task_id not in rows:
            continue
        head, target = encode_pair(tok, prompt, solution)
        row = rows[task_id]
        assert row["nll_nats"] == pytest.approx(oracle(model, head, target, context), rel=1e-5)
        assert row["bits_per_byte"] == pytest.approx(row["nll_nats"] / math.log(2) / len(solution.encode()))
        assert row["kept_prompt_tokens"] == min(len(head), context + 1 - len(target))


def test_trailing_spaces_of_the_prompt_belong_to_the_solution():
    head, target = encode_pair(CharTokenizer(), "short  ", "pass")
    assert len(head) == 5 and len(target) == 6


def test_summary_counts_truncated_and_left_out_problems(one_thread):
    model = random_model(objective("stp"))
    rows = solution_nll(model, CharTokenizer(), PAIRS, 16)
    summary = summarize("humaneval", rows, len(PAIRS))
    assert summary["nll/humaneval/left_out"] == 1 and summary["nll/humaneval/problems"] == 3
    assert summary["nll/humaneval/prompts_truncated"] == 2  # 10+13 and 40+5 tokens do not fit 16+1
