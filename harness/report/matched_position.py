"""Late-vs-early at matched overall loss: does an arm help late positions more than a
baseline of the *same quality* does?

Why matching. A weaker model uses its context less, so its loss ratio to a stronger one
rises along the window whatever made it weaker: STP after 100 steps against STP after 200
(no MTP anywhere) gives R_late - R_early > 0 with an interval excluding zero. The raw ratio
therefore confounds "MTP helps late positions" with "this arm is better or worse overall".

The statistic. Every run also scores the same held-out rows at earlier checkpoints of its
own training (`eval/per_position_trajectory.npz`: K checkpoints, the last one final). Of the
two arms, the one with the higher final mean loss is kept final; the other is replaced by
its own trajectory interpolated (piecewise linearly, on the segment nearest the end that
brackets it) to the same mean loss. With both at equal overall loss,

    D = R_late - R_early,   R_Q = mean loss of the arm over positions Q / the baseline's,

for Q = the first and last quarter of positions. D < 0 supports the claim (the arm is
relatively better late in the window than a baseline of equal quality); D > 0 contradicts
it. When the worse run is worse than every checkpoint of the better one, no match exists
and the draw is left out; if more than 5% of draws (or the point estimate) have no match,
the statistic is not testable ("train longer or keep earlier checkpoints").

Interval: percentile bootstrap, two-level as `stats.paired_gain` (rows = documents resampled
once per draw and shared by both arms, each arm's seeds resampled independently).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.report.stats import Interval, _counts

MAX_UNMATCHED = 0.05


@dataclass(frozen=True)
class MatchedLateEarly:
    d: Interval | None  # None: not testable
    matched_fraction: float  # draws with a match
    worse: str  # "arm" or "baseline": which one was kept final (point estimate)
    n_rows: int
    n_seeds: tuple[int, int]


def _summaries(trajectories: np.ndarray) -> np.ndarray:
    """[seeds, K, rows, S] -> [seeds, K, rows, 3]: per row, mean over the first quarter, the
    last quarter and all positions (all the statistic needs, so draws stay cheap)."""
    q = max(1, trajectories.shape[-1] // 4)
    return np.stack([trajectories[..., :q].mean(-1), trajectories[..., -q:].mean(-1),
                     trajectories.mean(-1)], axis=-1)


def _interpolate(curve: np.ndarray, target: float) -> np.ndarray | None:
    """curve [K, 3] (early, late, mean) along training; the (early, late, mean) point where
    the mean equals `target`, on the last segment that brackets it, or None."""
    means = curve[:, 2]
    for k in range(len(means) - 2, -1, -1):
        a, b = means[k], means[k + 1]
        if min(a, b) <= target <= max(a, b):
            t = 0.0 if a == b else (a - target) / (a - b)
            return (1 - t) * curve[k] + t * curve[k + 1]
    return None


def _statistic(base: np.ndarray, arm: np.ndarray) -> tuple[float, str]:
    """base/arm: [K, 3] mean summaries. D, and which side was kept final; nan if no match."""
    if arm[-1, 2] >= base[-1, 2]:
        kept, other, worse = arm[-1], _interpolate(base, arm[-1, 2]), "arm"
        if other is None:
            return float("nan"), worse
        a, b = kept, other
    else:
        matched, worse = _interpolate(arm, base[-1, 2]), "baseline"
        if matched is None:
            return float("nan"), worse
        a, b = matched, base[-1]
    return float(a[1] / b[1] - a[0] / b[0]), worse


def matched_late_early(baseline, arm, *, confidence: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> MatchedLateEarly:
    """`baseline`/`arm`: per-position losses along training, [seeds, K, rows, S] (or
    [K, rows, S] for one seed) on the same rows; K may differ between the arms."""
    base, mtp = (np.asarray(x, dtype=float) for x in (baseline, arm))
    base, mtp = (x[None] if x.ndim == 3 else x for x in (base, mtp))
    if base.shape[2:] != mtp.shape[2:]:
        raise ValueError(f"arms cover different held-out rows or lengths ({base.shape[2:]} vs {mtp.shape[2:]})")
    sb, sm = _summaries(base), _summaries(mtp)
    point, worse = _statistic(sb.mean(axis=(0, 2)), sm.mean(axis=(0, 2)))
    rng = np.random.default_rng(seed)
    n_rows = base.shape[2]
    rows = _counts(rng, n_rows, n_resamples) / n_rows  # [draws, rows]
    picks_b = _counts(rng, base.shape[0], n_resamples) / base.shape[0]  # [draws, seeds]
    picks_m = _counts(rng, mtp.shape[0], n_resamples) / mtp.shape[0]
    cb = np.einsum("dr,ds,skrc->dkc", rows, picks_b, sb)  # [draws, K, 3]
    cm = np.einsum("dr,ds,skrc->dkc", rows, picks_m, sm)
    draws = np.array([_statistic(cb[i], cm[i])[0] for i in range(n_resamples)])
    matched = float(np.isfinite(draws).mean())
    shape = (base.shape[2], (base.shape[0], mtp.shape[0]))
    if not np.isfinite(point) or matched < 1 - MAX_UNMATCHED:
        return MatchedLateEarly(None, matched, worse, *shape)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws[np.isfinite(draws)], [alpha, 1 - alpha])
    return MatchedLateEarly(Interval(point, float(low), float(high)), matched, worse, *shape)
