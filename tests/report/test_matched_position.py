"""The matched-loss late-vs-early statistic on constructed per-position losses.

A family of models of one architecture differs only in quality q: loss(p) = 6 - 2q -
1.5 q log(1+p)/log(S). A weaker member uses its context less, which is exactly what biases
the raw ratio; the matched statistic must call two members of the family "not
distinguishable" and still find an arm that really helps late positions.
"""

from __future__ import annotations

import numpy as np

from harness.report.matched_position import matched_late_early
from harness.report.stats import position_ratio

S, ROWS = 128, 80
QUALITIES = [0.2, 0.4, 0.6, 0.8, 1.0]


def family(scale: float, rng, seeds: int = 1) -> np.ndarray:
    p = np.log1p(np.arange(S)) / np.log(S)
    out = []
    for _ in range(seeds):
        row_noise = rng.normal(0, 0.3, (ROWS, 1)) + rng.normal(0, 0.05, (ROWS, S))
        out.append(np.stack([6 - 2 * q * scale - 1.5 * q * scale * p + row_noise for q in QUALITIES]))
    return np.stack(out)  # [seeds, K, rows, S]


def test_a_weaker_member_of_the_same_family_is_not_distinguishable_though_the_raw_ratio_says_contradicted():
    rng = np.random.default_rng(0)
    base, weaker = family(1.0, rng, seeds=2), family(0.7, rng, seeds=2)
    raw = position_ratio(base[:, -1], weaker[:, -1], n_resamples=400)
    assert raw.late_minus_early.low > 0  # the bias the matched statistic removes
    matched = matched_late_early(base, weaker, n_resamples=400)
    assert matched.d is not None and matched.d.low < 0 < matched.d.high and matched.worse == "arm"


def test_an_arm_that_helps_late_positions_is_found_whichever_side_is_better():
    rng = np.random.default_rng(1)
    base = family(1.0, rng)
    late = 0.3 * np.arange(S) / S
    for scale in (0.7, 1.2):  # worse overall (base matched) and better overall (arm matched)
        arm = family(scale, rng) - late
        matched = matched_late_early(base, arm, n_resamples=400)
        assert matched.d is not None and matched.d.high < 0, scale


def test_losses_too_far_apart_are_not_testable():
    rng = np.random.default_rng(2)
    base = family(1.0, rng)
    hopeless = family(1.0, rng) + 5.0  # worse than every checkpoint of the baseline
    result = matched_late_early(base, hopeless, n_resamples=200)
    assert result.d is None and result.matched_fraction < 0.5
