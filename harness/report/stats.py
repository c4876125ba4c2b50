"""Paired bootstrap confidence intervals for gains over the baseline.

Outcomes are per problem (1/0 for greedy pass@1, or the unbiased per-problem pass@k
estimate), so an arm and its baseline are compared problem by problem. With several seeds
the bootstrap is two-level: problems are resampled once per draw and shared by both arms
(the pairing), and each arm's seeds are resampled independently (the training noise).
With one seed this is the ordinary paired percentile bootstrap, which the tests check
against `scipy.stats.bootstrap`; the two-level case is why it is written out here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gain:
    """Mean gain (arm - baseline, in the outcome's units) and its percentile interval."""

    mean: float
    low: float
    high: float
    confidence: float
    n_problems: int
    n_seeds: tuple[int, int]

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _as_seeds(outcomes) -> np.ndarray:
    a = np.asarray(outcomes, dtype=float)
    return a[None, :] if a.ndim == 1 else a


def paired_gain(baseline, arm, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> Gain:
    """`baseline`/`arm`: per-problem outcomes, shape [problems] or [seeds, problems], with
    the same problems in the same order."""
    base, mtp = _as_seeds(baseline), _as_seeds(arm)
    if base.shape[1] != mtp.shape[1]:
        raise ValueError(f"arms cover different problem sets ({base.shape[1]} vs {mtp.shape[1]} problems)")
    rng = np.random.default_rng(seed)
    n = base.shape[1]
    problems = rng.integers(0, n, size=(n_resamples, n))
    draws = np.empty(n_resamples)
    for i in range(n_resamples):
        b = base[rng.integers(0, base.shape[0], size=base.shape[0])].mean(axis=0)
        m = mtp[rng.integers(0, mtp.shape[0], size=mtp.shape[0])].mean(axis=0)
        draws[i] = (m - b)[problems[i]].mean()
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    mean = float(mtp.mean(axis=0).mean() - base.mean(axis=0).mean())
    return Gain(mean, float(low), float(high), confidence, n, (base.shape[0], mtp.shape[0]))
