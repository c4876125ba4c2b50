"""Polynomial arithmetic in F_p[X]/(X^d) (Gloeckle et al. 2024, Sec. 4.2; paper: p=7, d=5).

A document is one expression and its answer, every symbol one word (the `vocabulary`
tokenizer makes each word one token):

    ( 3 0 6 1 2 * ( - 1 1 0 0 5 ) ) = 4 2 0 1 1

A polynomial is written as its d coefficients from X^0 up. Every operation is fully
parenthesised: `( - A )` negation, `( A + B )`, `( A * B )` (product truncated at X^d) and
`( A o B )`, the composition A(B(X)). Composition takes A's canonical representative (degree
< d) and substitutes B, truncated at X^d: the paper does not say how it treats a B with a
non-zero constant term, where A(B) depends on the representative; this is one deterministic
choice, stated. The ring arithmetic is written out here (a few lines of modular convolution)
rather than taken from a library so that the generator has no dependency whose behaviour
could change the data; the tests check it against sympy's GF(p) polynomials.

An expression with m operations is drawn top-down: an operation uniformly from the
configured ones; negation gives its operand the remaining m-1 operations, a binary
operation splits them uniformly (k left, m-1-k right); leaves are uniform polynomials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from harness.data.synthetic.config import PolynomialSource
from harness.data.synthetic.draw import Draw
from harness.errors import HarnessError

GENERATOR_VERSION = 1
SYMBOLS = {"add": "+", "mul": "*", "compose": "o"}
NEG = "-"
STRUCTURE = ("(", ")", NEG, *SYMBOLS.values(), "=")

Poly = tuple[int, ...]


@dataclass(frozen=True)
class Ring:
    """F_p[X]/(X^d): polynomials as d coefficients, lowest degree first."""

    p: int
    d: int

    def neg(self, a: Poly) -> Poly:
        return tuple(-x % self.p for x in a)

    def add(self, a: Poly, b: Poly) -> Poly:
        return tuple((x + y) % self.p for x, y in zip(a, b))

    def mul(self, a: Poly, b: Poly) -> Poly:
        out = [0] * self.d
        for i, x in enumerate(a):
            for j in range(self.d - i):  # terms of degree >= d vanish
                out[i + j] += x * b[j]
        return tuple(c % self.p for c in out)

    def compose(self, a: Poly, b: Poly) -> Poly:
        """a(b(X)) by Horner's rule: ((a_{d-1} b + a_{d-2}) b + ...) + a_0."""
        out: Poly = (0,) * self.d
        for coefficient in reversed(a):
            out = self.add(self.mul(out, b), (coefficient,) + (0,) * (self.d - 1))
        return out

    def apply(self, op: str, *args: Poly) -> Poly:
        return getattr(self, op)(*args)


def draw_expression(draw: Draw, ring: Ring, operations: list[str], m: int) -> tuple[list[str], Poly]:
    """(the expression's words, its value) for an expression with exactly m operations."""
    if m == 0:
        leaf = tuple(draw.below(ring.p) for _ in range(ring.d))
        return [str(c) for c in leaf], leaf
    op = draw.pick(operations)
    if op == "neg":
        words, value = draw_expression(draw, ring, operations, m - 1)
        return ["(", NEG, *words, ")"], ring.neg(value)
    left_ops = draw.below(m)  # 0 .. m-1 of the remaining m-1 go left
    left, a = draw_expression(draw, ring, operations, left_ops)
    right, b = draw_expression(draw, ring, operations, m - 1 - left_ops)
    return ["(", *left, SYMBOLS[op], *right, ")"], ring.apply(op, a, b)


@dataclass(frozen=True)
class Example:
    ops: int
    question: str  # the expression and "=", words joined by single spaces
    answer: str  # the d coefficients, joined by single spaces

    @property
    def text(self) -> str:
        return f"{self.question} {self.answer}"


class PolynomialGenerator:
    """Training documents and the test set of one `PolynomialSource`, from its seed."""

    name = "polynomial"
    version = GENERATOR_VERSION

    def __init__(self, cfg: PolynomialSource):
        self.cfg = cfg
        self.ring = Ring(cfg.modulus, cfg.degree_bound)

    def example(self, draw: Draw, m: int) -> Example:
        words, value = draw_expression(draw, self.ring, list(self.cfg.operations), m)
        return Example(m, " ".join([*words, "="]), " ".join(str(c) for c in value))

    def vocabulary(self) -> list[str]:
        return [str(c) for c in range(self.cfg.modulus)] + list(STRUCTURE)

    def test_examples(self) -> list[Example]:
        """test_per_ops expressions for each m in 1..test_max_ops, from their own stream."""
        draw = Draw(self.cfg.seed, "polynomial/test")
        return [self.example(draw, m) for m in range(1, self.cfg.test_max_ops + 1) for _ in range(self.cfg.test_per_ops)]

    def train_texts(self) -> Iterator[str]:
        """train_documents documents; an expression that is also a test question is skipped
        (drawn again), so no test answer is ever trained on."""
        held_out = {example.question for example in self.test_examples()}
        draw = Draw(self.cfg.seed, "polynomial/train")
        made = skipped = 0
        while made < self.cfg.train_documents:
            example = self.example(draw, draw.between(1, self.cfg.train_max_ops))
            if example.question not in held_out:
                made += 1
                yield example.text
            elif (skipped := skipped + 1) > 100 + made:  # a small ring: the test set holds most expressions
                raise HarnessError(
                    f"the test set holds most training expressions ({skipped} of {skipped + made} drawn were test "
                    "questions): with these settings there are too few distinct expressions",
                    fix="raise data.source.degree_bound or lower data.source.test_per_ops",
                )

    def test_rows(self) -> list[dict]:
        rows = []
        for index, example in enumerate(self.test_examples()):
            rows.append({"task_id": f"m{example.ops:02d}-{index % self.cfg.test_per_ops:05d}", "ops": example.ops,
                         "ood": example.ops > self.cfg.train_max_ops, "question": example.question,
                         "answer": example.answer})
        return rows

    def facts(self) -> dict:
        return {"coefficients": self.cfg.degree_bound, "chance_exact_match": float(self.cfg.modulus) ** -self.cfg.degree_bound}
