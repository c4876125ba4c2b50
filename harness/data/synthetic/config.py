"""The `data.source` sections of the two synthetic probes (Gloeckle et al. 2024, Sec. 4).

Every field changes the generated text, so the whole section (plus the generator's version)
is the source's identity and part of the data cache key. Defaults are the laptop settings
chosen by calibration (see `docs/FACTS.md`, "Probes"); where the paper's value differs, the
field's description gives the paper's.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Probe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, ge=0, description="generator seed: the same seed gives the same text, always")
    train_documents: int = Field(default=20_000, ge=2, description="training documents generated (before the val split)")


class InductionSource(_Probe):
    """Short template stories whose characters carry two-token random names (Sec. 4.1).

    The metric is the accuracy of the next-token prediction of a name's second token at every
    mention after the first: given the first token, only the earlier mention tells the second
    (a pure induction task). The paper replaced names in 100 real TinyStories test stories and
    trained on ordinary stories; here both come from one template grammar (see FACTS.md).
    """

    kind: Literal["induction"] = "induction"
    first_parts: int = Field(default=48, ge=2, le=96, description="first-token syllables of random names")
    second_parts: int = Field(default=48, ge=2, le=96, description="second-token syllables (chance = 1/this)")
    characters: tuple[int, int] = Field(default=(2, 4), description="characters per story, inclusive range")
    sentences: tuple[int, int] = Field(default=(8, 14), description="body sentences per story, inclusive range")
    train_random_names: float = Field(
        default=1.0, ge=0, le=1,
        description="probability that a training character gets a random two-token name rather than a "
        "one-token name from a fixed pool (paper: ordinary names in training, i.e. 0; test stories: always 1)",
    )
    test_documents: int = Field(default=400, ge=1, description="held-out test stories (paper: 100)")

    @model_validator(mode="after")
    def _ranges(self) -> "InductionSource":
        for name in ("characters", "sentences"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ValueError(f"{name} must be an inclusive range [low, high] with 1 <= low <= high")
        if self.characters[1] > min(self.first_parts, 8):
            raise ValueError("at most min(first_parts, 8) characters per story (first tokens are distinct per story)")
        return self


class PolynomialSource(_Probe):
    """Expressions over F_p[X]/(X^d) whose answer is the result's coefficients (Sec. 4.2).

    Operations (unary negation, addition, multiplication, composition) and operand
    coefficients are drawn uniformly; an expression holds m operations, m uniform in
    [1, train_max_ops] for training; the test set has `test_per_ops` expressions for every m
    in [1, test_max_ops], so m > train_max_ops is out of distribution.
    """

    kind: Literal["polynomial"] = "polynomial"
    modulus: int = Field(default=7, description="p, a prime (paper: 7)")
    degree_bound: int = Field(default=5, ge=1, le=8, description="d in X^d = 0: coefficients per polynomial (paper: 5)")
    operations: list[Literal["neg", "add", "mul", "compose"]] = Field(
        default=["neg", "add", "mul", "compose"], min_length=1, description="drawn uniformly (paper: all four)"
    )
    train_max_ops: int = Field(default=5, ge=1, description="training m in [1, this] (paper: 5)")
    test_max_ops: int = Field(default=10, ge=1, le=20, description="test m in [1, this]; above train_max_ops is OOD")
    test_per_ops: int = Field(default=200, ge=1, description="test expressions per m (paper: 2000)")

    @model_validator(mode="after")
    def _valid(self) -> "PolynomialSource":
        if self.modulus not in (2, 3, 5, 7, 11, 13):
            raise ValueError(f"modulus {self.modulus} must be a small prime (2, 3, 5, 7, 11 or 13)")
        if len(set(self.operations)) != len(self.operations):
            raise ValueError("operations has duplicates")
        if self.test_max_ops < self.train_max_ops:
            raise ValueError("test_max_ops must be at least train_max_ops (the test covers every trained m)")
        return self
