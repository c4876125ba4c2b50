"""The paired bootstrap gives the known interval on constructed per-problem outcomes, scipy's
interval with one seed, and a brute-force loop's with several (the two-level case)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.report.stats import difference_of_gains, paired_gain


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


def brute_force_two_level(base: np.ndarray, arm: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """The two-level bootstrap written the slow, obvious way: per draw, resample the problems
    once (shared by both arms: the pairing) and each arm's seeds on their own (training
    noise), then take mean(arm) - mean(baseline) over the drawn seeds and problems."""
    rng = np.random.default_rng(seed)
    n = base.shape[1]
    draws = np.empty(n_resamples)
    for i in range(n_resamples):
        problems = rng.integers(0, n, size=n)
        seeds_b = rng.integers(0, base.shape[0], size=base.shape[0])
        seeds_a = rng.integers(0, arm.shape[0], size=arm.shape[0])
        draws[i] = arm[seeds_a][:, problems].mean() - base[seeds_b][:, problems].mean()
    return draws


def test_two_level_gain_matches_a_brute_force_reference():
    rng = np.random.default_rng(7)
    ability = rng.random(80)  # per-problem difficulty, shared by the seeds of both arms
    base = (rng.random((3, 80)) < ability * 0.6).astype(float)
    arm = (rng.random((2, 80)) < np.clip(ability * 0.6 + 0.15, 0, 1)).astype(float)
    ours = paired_gain(base, arm, n_resamples=20_000, seed=1)
    draws = brute_force_two_level(base, arm, 20_000, seed=2)
    low, high = np.quantile(draws, [0.025, 0.975])
    assert ours.mean == pytest.approx(arm.mean() - base.mean(), abs=1e-12)
    assert ours.low == pytest.approx(low, abs=0.008) and ours.high == pytest.approx(high, abs=0.008)


def test_two_level_position_ratio_matches_a_brute_force_reference():
    from harness.report.stats import position_ratio

    rng = np.random.default_rng(3)
    rows, S = 40, 8
    shared = 3 + rng.gamma(2.0, 0.5, size=(rows, S))  # the same held-out rows for both arms
    base = shared[None] * (1 + rng.normal(0, 0.05, size=(3, 1, S)))  # seeds move whole curves
    arm = shared[None] * np.linspace(1.0, 0.9, S) * (1 + rng.normal(0, 0.05, size=(2, 1, S)))
    ours = position_ratio(base, arm, n_resamples=8000, seed=4).late_minus_early
    draw_rng, q, draws = np.random.default_rng(5), S // 4, []
    for _ in range(8000):
        r = draw_rng.integers(0, rows, size=rows)
        b = base[draw_rng.integers(0, 3, size=3)][:, r].mean(axis=(0, 1))
        a = arm[draw_rng.integers(0, 2, size=2)][:, r].mean(axis=(0, 1))
        draws.append(a[-q:].mean() / b[-q:].mean() - a[:q].mean() / b[:q].mean())
    low, high = np.quantile(draws, [0.025, 0.975])
    assert ours.low == pytest.approx(low, abs=0.006) and ours.high == pytest.approx(high, abs=0.006)


# -- difference of gains (the probes' "fades with size" and "most out of distribution") -------


def test_difference_of_equal_gains_on_the_same_problems_is_exactly_zero():
    rng = np.random.default_rng(2)
    base = (rng.random((3, 150)) < 0.3).astype(float)
    arm = (rng.random((3, 150)) < 0.5).astype(float)
    # Shared problems, the same outcomes in both pairs: every draw's difference is 0 only if
    # the problems are resampled together (the seeds are drawn per arm, so use one seed).
    g = difference_of_gains((base[:1], arm[:1]), (base[:1], arm[:1]), same_problems=True, n_resamples=2000)
    assert (g.mean, g.low, g.high) == (0.0, 0.0, 0.0)
    independent = difference_of_gains((base[:1], arm[:1]), (base[:1], arm[:1]), same_problems=False, n_resamples=2000)
    assert independent.mean == 0.0 and independent.low < -0.05 and independent.high > 0.05


def test_difference_of_gains_finds_a_larger_gain_and_matches_its_point_estimate():
    base = np.zeros((2, 300))
    big, small = base.copy(), base.copy()
    big[:, :90] = 1  # +30 points
    small[:, :15] = 1  # +5 points
    g = difference_of_gains((base, big), (base, small), same_problems=True, n_resamples=4000)
    assert g.mean == pytest.approx(0.25) and g.low > 0.15 and g.high < 0.35 and g.excludes_zero
    flipped = difference_of_gains((base, small), (base, big), same_problems=True, n_resamples=4000)
    assert flipped.mean == pytest.approx(-0.25) and flipped.high < 0


def test_difference_of_gains_refuses_mismatched_problem_sets():
    with pytest.raises(ValueError, match="same_problems"):
        difference_of_gains((np.zeros(10), np.ones(10)), (np.zeros(12), np.ones(12)), same_problems=True)
    with pytest.raises(ValueError, match="different problem sets"):
        difference_of_gains((np.zeros(10), np.ones(11)), (np.zeros(12), np.ones(12)), same_problems=False)
