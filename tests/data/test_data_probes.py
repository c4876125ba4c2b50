"""The synthetic probe sources: deterministic from their seed, the manifest records the
generator, names are exactly two tokens, and the polynomial answers are right (checked
against sympy's polynomials over GF(p), an independent implementation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.data.config import DataConfig
from harness.data.prepare import prepare_data
from harness.data.synthetic.config import InductionSource, PolynomialSource
from harness.data.synthetic.induction import InductionGenerator, story_words
from harness.data.synthetic.polynomial import PolynomialGenerator, Ring

INDUCTION = InductionSource(train_documents=40, test_documents=30)
POLYNOMIAL = PolynomialSource(train_documents=300, test_per_ops=20, test_max_ops=7)


def _probe_config(source) -> DataConfig:
    return DataConfig(source=source, tokenizer={"kind": "vocabulary"}, decontaminate={"enabled": False},
                      val_fraction=0.1)


def _prepare(source, tmp_path: Path, vocab_size: int = 256):
    return prepare_data(_probe_config(source), vocab_size=vocab_size, seq_len=32, base_dir=tmp_path,
                        cache_root=tmp_path / "cache")


# -- determinism and the manifest ------------------------------------------------------------

@pytest.mark.parametrize("generator, source", [(InductionGenerator, INDUCTION), (PolynomialGenerator, POLYNOMIAL)])
def test_same_seed_same_text_other_seed_other_text(generator, source):
    first, again = generator(source), generator(source)
    assert list(first.train_texts()) == list(again.train_texts())
    assert first.test_rows() == again.test_rows()
    other = generator(source.model_copy(update={"seed": 1}))
    assert list(other.train_texts()) != list(first.train_texts())
    assert other.test_rows() != first.test_rows()


def test_the_manifest_records_generator_settings_and_the_test_file(tmp_path):
    prepared = _prepare(INDUCTION, tmp_path)
    probe = prepared.manifest["probe"]
    assert probe["kind"] == "induction" and probe["generator_version"] == 1
    assert probe["settings"] == INDUCTION.model_dump(mode="json")
    assert probe["test_rows"] == 30 and probe["chance_second_token"] == pytest.approx(1 / 48)
    rows = (prepared.path / probe["test_file"]).read_text().splitlines()
    assert len(rows) == 30
    assert prepared.manifest["tokenizer"]["kind"] == "vocabulary"
    # Another seed is another preparation (the settings are the cache key), never a cache hit.
    other = _prepare(INDUCTION.model_copy(update={"seed": 3}), tmp_path)
    assert other.path != prepared.path and other.manifest["probe"]["test_sha256"] != probe["test_sha256"]
    # Test stories never enter the token shards: no test text is a training document.
    train_texts = set(InductionGenerator(INDUCTION).train_texts())
    assert not train_texts & {json.loads(r)["text"] for r in rows}


def test_probe_sources_need_the_vocabulary_tokenizer_and_it_needs_a_probe():
    with pytest.raises(ValidationError, match="needs data.tokenizer.kind: vocabulary"):
        DataConfig(source=INDUCTION)
    with pytest.raises(ValidationError, match="needs a source with a fixed vocabulary"):
        DataConfig(tokenizer={"kind": "vocabulary"})


def test_a_model_vocabulary_too_small_for_the_generator_is_one_clear_error(tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="model.vocab_size to at least"):
        _prepare(INDUCTION, tmp_path, vocab_size=64)


# -- induction -------------------------------------------------------------------------------

def test_names_are_two_tokens_and_targets_are_second_tokens_of_repeated_names(tmp_path):
    prepared = _prepare(INDUCTION, tmp_path)
    tokenizer = prepared.load_tokenizer()
    generator = InductionGenerator(INDUCTION)
    firsts, seconds = set(generator.firsts), set(generator.seconds)
    assert not (firsts | seconds) & set(story_words())
    rows = [json.loads(r) for r in (prepared.path / "probe" / "test.jsonl").read_text().splitlines()]
    targets = 0
    for row in rows:
        words = row["text"].split(" ")
        ids = tokenizer.encode(row["text"], add_special_tokens=False).ids
        assert len(ids) == len(words) and tokenizer.token_to_id("<unk>") not in ids
        assert tokenizer.decode(ids) == row["text"]
        seen: dict[str, str] = {}
        for i, word in enumerate(words):  # every name in a test story: first syllable then second
            if word in firsts:
                assert words[i + 1] in seconds
                assert seen.setdefault(word, words[i + 1]) == words[i + 1]  # first token fixes the name
        for target in row["targets"]:
            q = target["position"]
            first, second = target["name"].split(" ")
            assert (words[q - 1], words[q]) == (first, second)
            assert f"{first} {second}" in " ".join(words[: q - 1])  # mentioned before
            assert len(tokenizer.encode(target["name"], add_special_tokens=False).ids) == 2
            targets += 1
        mentions = sum(words.count(first) for first in seen)
        assert len(row["targets"]) == mentions - len(seen)  # every mention but the first is scored
    assert targets > 5 * len(rows)


def test_training_names_follow_train_random_names():
    pool_only = InductionGenerator(INDUCTION.model_copy(update={"train_random_names": 0.0}))
    generator = InductionGenerator(INDUCTION)
    firsts = set(generator.firsts)
    assert not any(w in firsts for t in pool_only.train_texts() for w in t.split(" "))
    assert all(any(w in firsts for w in t.split(" ")) for t in generator.train_texts())


# -- polynomial ------------------------------------------------------------------------------

def _sympy(ring: Ring):
    """An independent oracle: sympy polynomials over GF(p), truncated at X^d."""
    import sympy

    x = sympy.Symbol("x")

    def poly(coefficients):
        return sympy.Poly(list(reversed(coefficients)), x, modulus=ring.p)

    def coefficients(p):
        truncated = p.rem(sympy.Poly(x**ring.d, x, modulus=ring.p))
        values = [int(c) % ring.p for c in reversed(truncated.all_coeffs())]
        return tuple(values + [0] * (ring.d - len(values)))

    return x, poly, coefficients


def _evaluate(tokens: list[str], ring: Ring):
    """Parse a fully parenthesised expression and evaluate it with sympy (recursive descent)."""
    x, poly, coefficients = _sympy(ring)

    def parse(i: int):
        if tokens[i] != "(":
            return poly([int(t) for t in tokens[i : i + ring.d]]), i + ring.d
        if tokens[i + 1] == "-":
            value, j = parse(i + 2)
            return -value, j + 1
        left, j = parse(i + 1)
        op = tokens[j]
        right, k = parse(j + 1)
        value = {"+": lambda: left + right, "*": lambda: left * right,
                 "o": lambda: poly(coefficients(left)).compose(poly(coefficients(right)))}[op]()
        return poly(coefficients(value)), k + 1

    value, end = parse(0)
    assert end == len(tokens)
    return coefficients(value)


def test_ring_operations_match_sympy():
    from harness.data.synthetic.draw import Draw

    ring, draw = Ring(7, 5), Draw(0, "oracle")
    _, poly, coefficients = _sympy(ring)
    for _ in range(60):
        a = tuple(draw.below(7) for _ in range(5))
        b = tuple(draw.below(7) for _ in range(5))
        assert ring.add(a, b) == coefficients(poly(a) + poly(b))
        assert ring.neg(a) == coefficients(-poly(a))
        assert ring.mul(a, b) == coefficients(poly(a) * poly(b))
        assert ring.compose(a, b) == coefficients(poly(a).compose(poly(b)))


@pytest.mark.parametrize("source", [POLYNOMIAL, POLYNOMIAL.model_copy(update={"modulus": 5, "degree_bound": 3})])
def test_every_answer_is_right_and_test_questions_are_never_trained_on(source):
    generator = PolynomialGenerator(source)
    rows = generator.test_rows()
    assert [r["ops"] for r in rows] == [m for m in range(1, 8) for _ in range(20)]
    assert all(r["ood"] == (r["ops"] > source.train_max_ops) for r in rows)
    for row in rows[::3]:
        question = row["question"].split(" ")
        assert question[-1] == "="
        assert sum(question.count(s) for s in "+*o-") == row["ops"]
        assert tuple(int(c) for c in row["answer"].split(" ")) == _evaluate(question[:-1], generator.ring)
    questions = {r["question"] for r in rows}
    trained = list(generator.train_texts())
    assert len(trained) == source.train_documents
    assert not questions & {t.split(" = ")[0] + " =" for t in trained}
    for text in trained[:40]:
        question, answer = text.split(" = ")
        assert tuple(int(c) for c in answer.split(" ")) == _evaluate(question.split(" "), generator.ring)


def test_polynomial_symbols_are_single_tokens(tmp_path):
    prepared = _prepare(POLYNOMIAL, tmp_path, vocab_size=32)
    tokenizer = prepared.load_tokenizer()
    assert prepared.vocab_size == 7 + 7 + 2  # digits, ( ) - + * o =, then EOS and unknown
    text = PolynomialGenerator(POLYNOMIAL).test_rows()[-1]
    full = f"{text['question']} {text['answer']}"
    assert len(tokenizer.encode(full, add_special_tokens=False).ids) == len(full.split(" "))


def test_a_ring_too_small_for_its_test_set_is_one_clear_error():
    from harness.errors import HarnessError

    tiny = POLYNOMIAL.model_copy(update={"degree_bound": 1, "operations": ["neg"], "train_max_ops": 1,
                                         "test_max_ops": 1, "test_per_ops": 50})
    with pytest.raises(HarnessError, match="too few distinct expressions"):
        list(PolynomialGenerator(tiny).train_texts())
