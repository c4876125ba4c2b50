"""The paired bootstrap gives the known interval on constructed per-problem outcomes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.report.stats import paired_gain


def test_constructed_outcomes_give_the_binomial_interval():
    # 200 problems: the baseline solves 50; the arm solves the same 50 and 20 more.
    base = np.zeros(200)
    base[:50] = 1
    arm = base.copy()
    arm[50:70] = 1
    gain = paired_gain(base, arm, n_resamples=20_000)
    half = 1.96 * np.sqrt(0.1 * 0.9 / 200)  # the per-problem differences are Bernoulli(0.1)
    assert gain.mean == pytest.approx(0.1)
    assert gain.low == pytest.approx(0.1 - half, abs=0.006)
    assert gain.high == pytest.approx(0.1 + half, abs=0.006)
    assert gain.excludes_zero


def test_matches_scipy_paired_percentile_bootstrap():
    rng = np.random.default_rng(1)
    base = (rng.random(164) < 0.3).astype(float)
    arm = np.where(rng.random(164) < 0.2, 1 - base, base)
    ours = paired_gain(base, arm, n_resamples=20_000, seed=3)
    ref = stats.bootstrap((base, arm), lambda b, a: np.mean(a - b), paired=True, vectorized=False,
                          n_resamples=20_000, method="percentile", random_state=5).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.01) and ours.high == pytest.approx(ref.high, abs=0.01)


def test_identical_arms_and_seed_noise():
    same = np.array([1, 0, 1, 1, 0] * 20, dtype=float)
    gain = paired_gain(same, same)
    assert (gain.mean, gain.low, gain.high, gain.excludes_zero) == (0.0, 0.0, 0.0, False)
    # Two seeds per arm that disagree widen the interval relative to one seed.
    rng = np.random.default_rng(0)
    seeds_base = (rng.random((2, 100)) < 0.4).astype(float)
    seeds_arm = (rng.random((2, 100)) < 0.4).astype(float)
    wide = paired_gain(seeds_base, seeds_arm)
    assert wide.n_seeds == (2, 2) and wide.low < wide.mean < wide.high


def test_different_problem_sets_are_refused():
    with pytest.raises(ValueError, match="different problem sets"):
        paired_gain(np.zeros(3), np.zeros(4))
