"""Random draws that give the same text on every Python and NumPy version.

Python guarantees only `Random.random()` (and the seeding of `Random(int)`) to stay the same
across versions; `choice`, `randrange` and `shuffle` have changed before, and NumPy's
`Generator` methods may change between releases. The probes' data must be a function of the
seed alone, so every draw here is built on `random()`; the generator version in the
manifest (`GENERATOR_VERSION` in each probe) covers the arithmetic below.
"""

from __future__ import annotations

import random
from typing import Sequence, TypeVar

from harness.hashing import seed_bytes

T = TypeVar("T")


class Draw:
    """Uniform draws from one named stream of a seed (streams are independent)."""

    def __init__(self, seed: int, stream: str):
        digest = seed_bytes(f"{seed}:{stream}")
        self._rng = random.Random(int.from_bytes(digest[:8], "big"))

    def below(self, n: int) -> int:
        """Uniform in [0, n) (n small: the float's 53 bits make the bias negligible)."""
        return min(int(self._rng.random() * n), n - 1)

    def between(self, low: int, high: int) -> int:
        """Uniform in [low, high], inclusive."""
        return low + self.below(high - low + 1)

    def pick(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def chance(self, p: float) -> bool:
        return self._rng.random() < p

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """k distinct items, in draw order (a partial Fisher-Yates shuffle)."""
        pool = list(items)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]
