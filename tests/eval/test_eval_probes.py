"""Probe evaluation: induction accuracy and polynomial exact match, per example, checked with
oracle models (a perfect induction copier, an answer table) and against unbatched scoring."""

from __future__ import annotations

import json

import pytest
import torch

from harness.data.config import DataConfig
from harness.data.prepare import prepare_data
from harness.data.synthetic.config import InductionSource, PolynomialSource
from harness.errors import HarnessError
from harness.eval.probes import induction, load_test_set, polynomial
from harness.model.config import TrunkConfig
from harness.model.mtp_model import build_model
from harness.model.objectives.stp import StpConfig


def _prepare(source, tmp_path, vocab_size):
    cfg = DataConfig(source=source, tokenizer={"kind": "vocabulary"}, decontaminate={"enabled": False}, val_fraction=0.2)
    return prepare_data(cfg, vocab_size=vocab_size, seq_len=32, base_dir=tmp_path, cache_root=tmp_path / "cache")


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    prepared = _prepare(InductionSource(train_documents=30, test_documents=12), tmp_path_factory.mktemp("ind"), 256)
    return prepared, *load_test_set(prepared)


@pytest.fixture(scope="module")
def expressions(tmp_path_factory):
    source = PolynomialSource(train_documents=200, test_per_ops=6, train_max_ops=2, test_max_ops=4)
    prepared = _prepare(source, tmp_path_factory.mktemp("poly"), 16)
    return prepared, *load_test_set(prepared)


class Oracle:
    """A stand-in model: `predict(prefix) -> token id` at every position of a batch."""

    def __init__(self, predict, vocab: int):
        self.predict, self.vocab = predict, vocab

    def eval(self):
        return self

    def next_token_logits(self, batch: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*batch.shape, self.vocab)
        for b, row in enumerate(batch.tolist()):
            for t in range(len(row)):
                logits[b, t, self.predict(row[: t + 1])] = 10.0
        return logits


def _copier(tokenizer, firsts: set[str]):
    """Perfect induction: after a first syllable seen before, the token that followed it then."""
    first_ids = {tokenizer.token_to_id(f) for f in firsts}

    def predict(prefix: list[int]) -> int:
        last = prefix[-1]
        if last in first_ids:
            for i in range(len(prefix) - 2, -1, -1):
                if prefix[i] == last:
                    return prefix[i + 1]
        return 0

    return predict


def _tiny_model(vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    cfg = TrunkConfig(stp_layers=2, d_model=16, n_heads=2, n_kv_heads=1, ffn_hidden=32, vocab_size=vocab_size, seq_len=256)
    model = build_model(cfg, StpConfig())
    model.init_weights(torch.Generator().manual_seed(seed))
    return model


def test_a_perfect_copier_scores_one_and_a_constant_model_zero(stories):
    from harness.data.synthetic.induction import InductionGenerator

    prepared, probe, rows = stories
    tokenizer = prepared.load_tokenizer()
    firsts = set(InductionGenerator(InductionSource.model_validate(probe["settings"])).firsts)
    vocab = prepared.vocab_size
    perfect = induction.score_stories(Oracle(_copier(tokenizer, firsts), vocab), tokenizer, rows, 0, 256, 5)
    assert len(perfect) == sum(len(r["targets"]) for r in rows) and all(r["correct"] for r in perfect)
    assert all(r["status"] == "passed" and r["task_id"].startswith(r["story"] + "/") for r in perfect)
    summary = induction.summarize(perfect, rows, probe)
    assert summary["induction/accuracy"] == 1.0 and summary["induction/targets_beyond_context"] == 0
    assert 0.25 <= summary["induction/copy_baseline"] <= 1.0 and summary["induction/chance"] == pytest.approx(1 / 48)
    constant = induction.score_stories(Oracle(lambda prefix: 0, vocab), tokenizer, rows, 0, 256, 5)
    assert not any(r["correct"] for r in constant)
    assert [r["task_id"] for r in constant] == [r["task_id"] for r in perfect]  # the same units, for pairing


def test_a_short_context_scores_only_the_mentions_inside_it(stories):
    prepared, probe, rows = stories
    tokenizer = prepared.load_tokenizer()
    scored = induction.score_stories(Oracle(lambda prefix: 0, prepared.vocab_size), tokenizer, rows, 0, 40, 4)
    expected = sum(t["position"] < 40 for r in rows for t in r["targets"])
    assert len(scored) == expected
    assert induction.summarize(scored, rows, probe)["induction/targets_beyond_context"] > 0


def test_batched_induction_rows_equal_one_story_at_a_time(stories, one_thread):
    prepared, _, rows = stories
    tokenizer, model = prepared.load_tokenizer(), _tiny_model(256)
    batched = induction.score_stories(model, tokenizer, rows, 0, 256, 5)
    single = induction.score_stories(model, tokenizer, rows, 0, 256, 1)
    assert [r["predicted"] for r in batched] == [r["predicted"] for r in single]
    assert [r["logprob"] for r in batched] == pytest.approx([r["logprob"] for r in single], abs=1e-4)


def test_a_tokenizer_that_splits_words_is_refused(stories):
    prepared, _, rows = stories

    class Splitter:  # a BPE-like tokenizer: two ids for some words
        def encode(self, text, add_special_tokens=False):
            return type("E", (), {"ids": [1] * (len(text.split(" ")) + 1)})()

        def token_to_id(self, token):
            return None

    with pytest.raises(HarnessError, match="one known token per word"):
        induction.score_stories(Oracle(lambda p: 0, 8), Splitter(), rows, 0, 256, 4)


def _answer_table(tokenizer, rows, wrong_last: bool = False):
    """An oracle that knows every answer: the prompt (tokens up to '=') -> the answer's tokens."""
    table = {}
    for row in rows:
        prompt = tuple([0, *tokenizer.encode(row["question"], add_special_tokens=False).ids])
        answer = [tokenizer.token_to_id(c) for c in row["answer"].split(" ")]
        if wrong_last:
            answer[-1] = tokenizer.token_to_id(str((int(row["answer"].split(" ")[-1]) + 1) % 7))
        for k in range(len(answer)):
            table[prompt + tuple(answer[:k])] = answer[k]
    return lambda prefix: table.get(tuple(prefix), 0)


def test_polynomial_exact_match_with_answer_tables(expressions):
    prepared, probe, rows = expressions
    tokenizer = prepared.load_tokenizer()
    right = polynomial.score_expressions(Oracle(_answer_table(tokenizer, rows), 16), tokenizer, rows, 0, 4)
    assert [r["task_id"] for r in right] == [r["task_id"] for r in rows]
    assert all(r["correct"] and r["completion"] == r["answer"] and r["coefficients_correct"] == 5 for r in right)
    summary = polynomial.summarize(right, probe)
    assert summary["polynomial/exact_match"] == summary["polynomial/exact_match_ood"] == 1.0
    assert {f"polynomial/exact_match_m{m:02d}" for m in range(1, 5)} <= set(summary)
    wrong = polynomial.score_expressions(Oracle(_answer_table(tokenizer, rows, wrong_last=True), 16), tokenizer,
                                         rows, 0, 4)
    summary = polynomial.summarize(wrong, probe)
    assert summary["polynomial/exact_match"] == 0.0
    assert summary["polynomial/coefficient_accuracy_id"] == pytest.approx(0.8)
    assert [r["ood"] for r in wrong] == [r["ops"] > 2 for r in rows]


def test_greedy_batches_equal_one_expression_at_a_time(expressions, one_thread):
    prepared, _, rows = expressions
    tokenizer, model = prepared.load_tokenizer(), _tiny_model(16, seed=3)
    batched = polynomial.score_expressions(model, tokenizer, rows, 0, 8)
    single = polynomial.score_expressions(model, tokenizer, rows, 0, 1)
    assert [r["completion"] for r in batched] == [r["completion"] for r in single]
    # And the greedy loop itself against step-by-step argmax on one prompt.
    prompt = torch.tensor([[0, *tokenizer.encode(rows[0]["question"], add_special_tokens=False).ids]])
    x = prompt
    for _ in range(5):
        x = torch.cat([x, model.next_token_logits(x)[:, -1:].argmax(-1)], dim=1)
    assert polynomial.greedy(model, prompt, 5).tolist() == x[:, prompt.shape[1]:].tolist()


def test_a_changed_test_file_is_refused(tmp_path):
    prepared = _prepare(InductionSource(train_documents=10, test_documents=3), tmp_path, 256)
    path = prepared.path / prepared.manifest["probe"]["test_file"]
    path.write_text(path.read_text().replace("the", "a", 1))
    with pytest.raises(HarnessError, match="differs from the manifest"):
        load_test_set(prepared)
    assert json.loads(path.read_text().splitlines()[0])["task_id"] == "story-00000"


def test_a_probe_the_data_does_not_generate_is_a_recipe_error(tmp_path):
    from harness.recipe import load_recipe
    from tests.conftest import RECIPES

    assert load_recipe(RECIPES / "probes" / "induction" / "tiny_stp.yaml").eval.probes == ["induction"]
    with pytest.raises(HarnessError, match=r"eval.probes \['polynomial'\] need the matching data.source.kind"):
        load_recipe(RECIPES / "probes" / "induction" / "tiny_stp.yaml", ["eval.probes=[polynomial]"])
