"""The matched-loss late-vs-early statistic on constructed per-position losses.

A family of models of one architecture differs only in quality q: loss(p) = 6 - 2q -
1.5 q log(1+p)/log(S). A weaker member uses its context less, which is exactly what biases
the raw ratio; the matched statistic must call two members of the family "not
distinguishable" and still find an arm that really helps late positions.
"""

from __future__ import annotations

import numpy as np

from harness.report.collect import summarize_rows
from harness.report.inference import CONTRADICTED, SUPPORTED, UNCLEAR, judge
from harness.report.matched_position import matched_late_early
from harness.report.stats import position_ratio

S, ROWS = 128, 80
QUALITIES = [0.2, 0.4, 0.6, 0.8, 1.0]


def family(scale: float, rng, seeds: int = 1) -> np.ndarray:
    p = np.log1p(np.arange(S)) / np.log(S)
    out = []
    for _ in range(seeds):
        row_noise = rng.normal(0, 0.3, (ROWS, 1)) + rng.normal(0, 0.05, (ROWS, S))
        quality = scale * (1 + rng.normal(0, 0.02))  # seeds differ a little in how good they get
        out.append(np.stack([6 - 2 * q * quality - 1.5 * q * quality * p + row_noise for q in QUALITIES]))
    return np.stack(out)  # [seeds, K, rows, S]


def matched(base, arm, n_resamples=400):
    b, a = [summarize_rows(t) for t in base], [summarize_rows(t) for t in arm]
    return matched_late_early(b, a, list(range(len(b))), list(range(len(a))), n_resamples=n_resamples)


def test_a_weaker_member_of_the_same_family_is_not_distinguishable_though_the_raw_ratio_says_contradicted():
    rng = np.random.default_rng(0)
    base, weaker = family(1.0, rng, seeds=3), family(0.7, rng, seeds=3)
    raw = position_ratio([t[-1].mean(axis=0) for t in base], [t[-1].mean(axis=0) for t in weaker])
    assert raw.late_minus_early > 0.01  # the bias the matched statistic removes
    found = matched(base, weaker)
    assert found.estimate is not None and found.worse == "arm"
    assert judge(found.estimate, "negative") == UNCLEAR, found.estimate


def test_an_arm_that_helps_late_positions_is_found_whichever_side_is_better():
    rng = np.random.default_rng(1)
    base = family(1.0, rng, seeds=3)
    late = 0.3 * np.arange(S) / S
    for scale in (0.7, 1.2):  # worse overall (base matched) and better overall (arm matched)
        arm = family(scale, rng, seeds=3) - late
        found = matched(base, arm)
        assert found.estimate is not None and judge(found.estimate, "negative") == SUPPORTED, scale
        assert found.estimate.method.startswith("t across 3 seeds")
    hurts = family(1.0, rng, seeds=3) + late
    assert judge(matched(base, hurts).estimate, "negative") == CONTRADICTED


def test_one_seed_gives_no_interval_across_seeds():
    rng = np.random.default_rng(3)
    found = matched(family(1.0, rng), family(0.8, rng))
    assert found.estimate is not None and not found.estimate.testable and "one seed" in found.estimate.untestable


def test_losses_too_far_apart_are_not_testable():
    rng = np.random.default_rng(2)
    base = family(1.0, rng, seeds=2)
    hopeless = family(1.0, rng, seeds=2) + 5.0  # worse than every checkpoint of the baseline
    result = matched(base, hopeless, n_resamples=200)
    assert result.estimate is None and "too far apart" in result.why and "seed 0" in result.why
