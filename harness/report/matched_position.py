"""Late-vs-early at matched overall loss: does an arm help late positions more than a
baseline of the *same quality* does?

Why matching. A weaker model uses its context less, so its loss ratio to a stronger one
rises along the window whatever made it weaker: STP after 100 steps against STP after 200
(no MTP anywhere) gives R_late - R_early > 0 with an interval excluding zero. The raw ratio
therefore confounds "MTP helps late positions" with "this arm is better or worse overall".

The statistic. Every run also scores the same held-out rows at earlier checkpoints of its
own training (`eval/per_position_trajectory.npz`: K checkpoints, the last one final). Of the
two runs, the one with the higher final mean loss is kept final; the other is replaced by
its own trajectory interpolated (piecewise linearly, on the segment nearest the end that
brackets it) to the same mean loss. With both at equal overall loss,

    D = R_late - R_early,   R_Q = mean loss of the arm over positions Q / the baseline's,

for Q = the first and last quarter of positions. D < 0 supports the claim (the arm is
relatively better late in the window than a baseline of equal quality); D > 0 contradicts
it. When the worse run is worse than every checkpoint of the better one, no match exists.

Inference (`report/inference.py`): D is computed once per seed, each arm's run against the
baseline's run of the same seed (arms on different seeds: paired by seed order), and the
interval is Student t across those values; beside it, the data-sampling interval resamples
the documents of the seed-averaged curves. A seed without a match, or more than 5% of
document resamples without one, makes the statistic not testable ("train longer or keep
earlier checkpoints"). Whether substituting a checkpoint is itself neutral is what the
laptop study's shorter-schedule STP control checks (`study.py`: schedule_fraction).

Inputs are per-row summaries (`collect.summarize_rows`: early quarter, late quarter, all
positions), [K, rows, 3] per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.report.inference import Estimate, per_seed
from harness.report.stats import _counts

MAX_UNMATCHED = 0.05


@dataclass(frozen=True)
class MatchedLateEarly:
    estimate: Estimate | None  # None: not testable (see `why`)
    why: str
    worse: str  # "arm" or "baseline": which one was kept final (seed-averaged curves)
    n_rows: int
    n_seeds: tuple[int, int]


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


def statistic(base: np.ndarray, arm: np.ndarray) -> tuple[float, str]:
    """base/arm: [K, 3] mean summaries along training. D, and which side was kept final; nan
    if no match exists."""
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


def _pairs(base_seeds: list[int], arm_seeds: list[int]) -> tuple[list[tuple[int, int]], str]:
    """Index pairs (baseline run, arm run): by seed when both ran the same seeds, else by order."""
    if base_seeds == arm_seeds:
        return [(i, i) for i in range(len(base_seeds))], ""
    n = min(len(base_seeds), len(arm_seeds))
    return [(i, i) for i in range(n)], "the arms ran different seeds: paired by seed order"


def row_draws(base: np.ndarray, arm: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """D for `n_resamples` resamples of the rows, shared by both sides (the pairing); base/arm
    [K, rows, 3]; nan where a resample has no match."""
    rng = np.random.default_rng(seed)
    n_rows = base.shape[1]
    weights = _counts(rng, n_rows, n_resamples) / n_rows  # [draws, rows]
    cb = np.einsum("dr,krc->dkc", weights, base)  # [draws, K, 3]
    cm = np.einsum("dr,krc->dkc", weights, arm)
    return np.array([statistic(cb[i], cm[i])[0] for i in range(n_resamples)])


def matched_late_early(baseline: list[np.ndarray], arm: list[np.ndarray], base_seeds: list[int],
                       arm_seeds: list[int], *, n_resamples: int = 2000, seed: int = 0) -> MatchedLateEarly:
    """`baseline`/`arm`: one [K, rows, 3] trajectory summary per run (seeds in order); K may
    differ between the two arms, not within one."""
    if len({t.shape[1:] for t in baseline + arm}) > 1:
        raise ValueError("the runs cover different held-out rows")
    n_rows, n_seeds = baseline[0].shape[1], (len(baseline), len(arm))
    pairs, note = _pairs(base_seeds, arm_seeds)
    values = [statistic(baseline[i].mean(axis=1), arm[j].mean(axis=1))[0] for i, j in pairs]
    mean_base, mean_arm = np.mean(baseline, axis=0), np.mean(arm, axis=0)  # seed-averaged [K, rows, 3]
    point, worse = statistic(mean_base.mean(axis=1), mean_arm.mean(axis=1))
    unmatched = [base_seeds[i] for (i, _), v in zip(pairs, values) if not np.isfinite(v)]
    if unmatched or not np.isfinite(point):
        who = f"seed {', '.join(map(str, unmatched))}" if unmatched else "the seed-averaged runs"
        return MatchedLateEarly(None, f"the two runs' losses are too far apart to match ({who}; train longer or "
                                      "keep earlier checkpoints)", worse, n_rows, n_seeds)
    draws = row_draws(mean_base, mean_arm, n_resamples, seed)
    matched = float(np.isfinite(draws).mean())
    if matched < 1 - MAX_UNMATCHED:
        return MatchedLateEarly(None, f"the two runs' losses are too far apart to match ({matched:.0%} of document "
                                      "resamples matched; train longer or keep earlier checkpoints)",
                                worse, n_rows, n_seeds)
    est = per_seed(values, draws[np.isfinite(draws)], point if len(values) < 2 else None, n_units=n_rows,
                   n_seeds=n_seeds, note=note)
    return MatchedLateEarly(est, "", worse, n_rows, n_seeds)
