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
    draws = np.empty(n_resamples)
    # Resampling as multinomial counts (problems, seeds) turns each draw into weighted sums;
    # chunks bound the memory at ~chunk x problems floats.
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws[start:start + size] = _gain_draws(rng, base, mtp, _counts(rng, n, size))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    mean = float(mtp.mean(axis=0).mean() - base.mean(axis=0).mean())
    return Gain(mean, float(low), float(high), confidence, n, (base.shape[0], mtp.shape[0]))


def _gain_draws(rng, base: np.ndarray, mtp: np.ndarray, problems: np.ndarray) -> np.ndarray:
    """[size] resampled mean gains: `problems` [size, n] are the problem counts of each draw
    (shared by both arms), each arm's seeds are resampled here."""
    size = problems.shape[0]
    b = _counts(rng, base.shape[0], size) @ base / base.shape[0]  # [size, problems]
    m = _counts(rng, mtp.shape[0], size) @ mtp / mtp.shape[0]
    return ((m - b) * problems).sum(axis=1) / base.shape[1]


def difference_of_gains(first, second, *, same_problems: bool, confidence: float = 0.95, n_resamples: int = 10_000,
                        seed: int = 0) -> Gain:
    """(gain of `first`) - (gain of `second`), each a (baseline, arm) pair of outcomes shaped as
    in `paired_gain`. `same_problems`: both pairs score the same problems in the same order (two
    model sizes on one test set), so a draw resamples them once for both; otherwise (in- vs
    out-of-distribution problems) each pair's problems are resampled independently. Seeds are
    resampled per arm either way. `n_problems` is the first pair's."""
    (b1, a1), (b2, a2) = ((_as_seeds(b), _as_seeds(a)) for b, a in (first, second))
    for b, a in ((b1, a1), (b2, a2)):
        if b.shape[1] != a.shape[1]:
            raise ValueError(f"a pair covers different problem sets ({b.shape[1]} vs {a.shape[1]} problems)")
    if same_problems and b1.shape[1] != b2.shape[1]:
        raise ValueError(f"same_problems, but {b1.shape[1]} vs {b2.shape[1]} problems")
    rng = np.random.default_rng(seed)
    n1, n2 = b1.shape[1], b2.shape[1]
    draws = np.empty(n_resamples)
    chunk = max(1, 1_000_000 // max(n1, n2))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        p1 = _counts(rng, n1, size)
        p2 = p1 if same_problems else _counts(rng, n2, size)
        draws[start:start + size] = _gain_draws(rng, b1, a1, p1) - _gain_draws(rng, b2, a2, p2)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    mean = float((a1.mean(axis=0).mean() - b1.mean(axis=0).mean()) - (a2.mean(axis=0).mean() - b2.mean(axis=0).mean()))
    return Gain(mean, float(low), float(high), confidence, n1, (b1.shape[0], a1.shape[0]))


def _counts(rng, n: int, size: int) -> np.ndarray:
    """[size, n]: how often each of n items is drawn in each of `size` resamples with replacement."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)

@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class PositionRatio:
    """MTP / STP next-token loss per position, and the late-vs-early statistics.

    `ratio[p]` = mean over rows of the arm's loss at p / the same mean for the baseline;
    `low`/`high` its pointwise band. `late_minus_early` = R_late - R_early, where R_Q is the
    arm's mean loss over the positions in Q (all rows) divided by the baseline's, with Q
    the first and the last quarter of positions. `slope` is the least-squares slope of
    ratio[p] against p / (S - 1): the change of the ratio from the first position to the last.
    """

    ratio: np.ndarray
    low: np.ndarray
    high: np.ndarray
    late_minus_early: Interval
    slope: Interval
    n_rows: int
    n_seeds: tuple[int, int]


def _seed_means(rng, per_seed: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[resamples, S]: per resample, rows weighted by `weights`, seeds resampled independently."""
    n_seeds, n_rows, _ = per_seed.shape
    means = np.einsum("br,srp->sbp", weights, per_seed) / n_rows  # [seeds, resamples, S]
    picks = _counts(rng, n_seeds, weights.shape[0]) / n_seeds
    return np.einsum("bs,sbp->bp", picks, means)


def _late_early(base: np.ndarray, arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For [..., S] mean curves: R_late - R_early and the OLS slope of the ratio vs p/(S-1)."""
    q = max(1, base.shape[-1] // 4)
    early = arm[..., :q].mean(-1) / base[..., :q].mean(-1)
    late = arm[..., -q:].mean(-1) / base[..., -q:].mean(-1)
    ratio = arm / base
    x = np.linspace(0.0, 1.0, base.shape[-1])
    x = x - x.mean()
    slope = (ratio - ratio.mean(-1, keepdims=True)) @ x / (x @ x)
    return late - early, slope


def position_ratio(baseline, arm, *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> PositionRatio:
    """`baseline`/`arm`: per-position losses [rows, S] or [seeds, rows, S] on the same rows.

    Rows are resampled once per draw and shared by both arms (the pairing); with several
    seeds each arm's seeds are also resampled independently, as in `paired_gain`."""
    base = np.asarray(baseline, dtype=float)
    mtp = np.asarray(arm, dtype=float)
    base, mtp = (a[None] if a.ndim == 2 else a for a in (base, mtp))
    if base.shape[1:] != mtp.shape[1:]:
        raise ValueError(f"arms cover different held-out rows or lengths ({base.shape[1:]} vs {mtp.shape[1:]})")
    rng = np.random.default_rng(seed)
    weights = _counts(rng, base.shape[1], n_resamples)  # rows, as weights
    b, m = _seed_means(rng, base, weights), _seed_means(rng, mtp, weights)
    alpha = (1 - confidence) / 2
    point_b, point_m = base.mean(axis=(0, 1)), mtp.mean(axis=(0, 1))
    diff, slope = _late_early(b, m)
    point_diff, point_slope = _late_early(point_b, point_m)
    low, high = np.quantile(m / b, [alpha, 1 - alpha], axis=0)

    def interval(point, draws) -> Interval:
        lo, hi = np.quantile(draws, [alpha, 1 - alpha])
        return Interval(float(point), float(lo), float(hi))

    return PositionRatio(point_m / point_b, low, high, interval(point_diff, diff), interval(point_slope, slope),
                         base.shape[1], (base.shape[0], mtp.shape[0]))
