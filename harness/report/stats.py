"""Resampling helpers, and the per-position loss ratio that the comparison draws.

The verdicts' intervals live in `report/inference.py` (across seeds, with the data-sampling
bootstrap beside them); this module keeps what they and the figure share: multinomial
resampling counts, and the unmatched per-position ratio curve with its band across seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


def _counts(rng, n: int, size: int) -> np.ndarray:
    """[size, n]: how often each of n items is drawn in each of `size` resamples with replacement."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)


@dataclass(frozen=True)
class PositionRatio:
    """MTP / STP next-token loss per position (unmatched: for the figure, not a verdict).

    `ratio[p]` = the arm's mean loss at p (over rows and seeds) / the baseline's; `low`/`high`
    a pointwise 95% band across seed pairs (Student t on the per-seed ratios; none with one
    seed). `late_minus_early` = R_late - R_early of the unmatched curves, R_Q the arm's mean
    over the positions in Q (first and last quarter) divided by the baseline's.
    """

    ratio: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    late_minus_early: float
    n_seeds: tuple[int, int]


def late_minus_early(base: np.ndarray, arm: np.ndarray) -> float:
    """R_late - R_early for two mean curves [S]."""
    q = max(1, base.shape[-1] // 4)
    early, late = arm[:q].mean() / base[:q].mean(), arm[-q:].mean() / base[-q:].mean()
    return float(late - early)


def position_ratio(base_curves: list[np.ndarray], arm_curves: list[np.ndarray],
                   confidence: float = 0.95) -> PositionRatio:
    """Curves: one [S] mean curve per run, seeds in order; runs pair by order (by seed when
    both arms ran the same seeds; valid for independent runs otherwise)."""
    base, arm = np.asarray(base_curves, dtype=float), np.asarray(arm_curves, dtype=float)
    mean_b, mean_a = base.mean(axis=0), arm.mean(axis=0)
    n = min(len(base), len(arm))
    low = high = None
    if n >= 2:
        per_seed = arm[:n] / base[:n]  # [n, S]
        half = scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * per_seed.std(axis=0, ddof=1) / math.sqrt(n)
        low, high = per_seed.mean(axis=0) - half, per_seed.mean(axis=0) + half
    return PositionRatio(mean_a / mean_b, low, high, late_minus_early(mean_b, mean_a), (len(base), len(arm)))
