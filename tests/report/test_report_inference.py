"""Seed-level inference: the across-seed intervals equal scipy's t tests, the data-sampling
interval equals scipy's paired percentile bootstrap, one seed gives no verdict, and the rule
needs both intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.report.inference import (
    CONTRADICTED,
    ONE_SEED,
    SUPPORTED,
    UNCLEAR,
    UNTESTABLE,
    SeedReference,
    Term,
    contrast,
    holm,
    judge,
    reference_from_control,
    seed_interval,
)


def outcomes(rng, seeds: int, shift: float, units: int = 100, seed_sd: float = 0.3) -> np.ndarray:
    difficulty = np.linspace(-1, 1, units)
    return np.stack([difficulty + shift + rng.normal(0, seed_sd) + rng.normal(0, 1, units) for _ in range(seeds)])


def test_paired_seeds_give_the_paired_t_interval():
    rng = np.random.default_rng(0)
    base, arm = outcomes(rng, 5, 0.0), outcomes(rng, 5, 0.5)
    est = contrast([Term(1.0, arm, (0, 1, 2, 3, 4)), Term(-1.0, base, (0, 1, 2, 3, 4))], n_resamples=2000)
    ref = stats.ttest_rel(arm.mean(axis=1), base.mean(axis=1))
    ci = ref.confidence_interval(0.95)
    assert (est.low, est.high, est.p) == pytest.approx((ci.low, ci.high, ref.pvalue))
    assert est.df == 4 and est.method == "paired t across 5 seeds"


def test_disjoint_seeds_give_welchs_interval():
    rng = np.random.default_rng(1)
    base, arm = outcomes(rng, 5, 0.0), outcomes(rng, 3, 0.2)
    est = contrast([Term(1.0, arm, (100, 101, 102)), Term(-1.0, base, (0, 1, 2, 3, 4))], n_resamples=2000)
    ref = stats.ttest_ind(arm.mean(axis=1), base.mean(axis=1), equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (est.low, est.high, est.p) == pytest.approx((ci.low, ci.high, ref.pvalue))
    assert est.method.startswith("Welch t across 3+5 seeds")


def test_partly_shared_seeds_pair_on_the_common_ones_or_refuse():
    rng = np.random.default_rng(2)
    base, arm = outcomes(rng, 4, 0.0), outcomes(rng, 3, 0.0)
    est = contrast([Term(1.0, arm, (0, 1, 2)), Term(-1.0, base, (0, 1, 2, 3))], n_resamples=500)
    assert est.df == 2 and "seeds [3] not run by every arm" in est.method
    one = contrast([Term(1.0, arm[:2], (0, 9)), Term(-1.0, base[:2], (0, 1))], n_resamples=500)
    assert not one.testable and "only one seed" in one.untestable


def test_one_seed_is_not_testable_unless_a_seed_sd_is_known():
    rng = np.random.default_rng(3)
    base, arm = outcomes(rng, 1, 0.0), outcomes(rng, 1, 3.0)
    terms = [Term(1.0, arm, (0,)), Term(-1.0, base, (0,))]
    est = contrast(terms, n_resamples=500)
    assert not est.testable and est.untestable == ONE_SEED and judge(est) == UNTESTABLE
    assert est.data_low > 0  # the data alone would have "found" it: that is what one seed cannot tell
    measured = reference_from_control([0.1, 0.4, 0.2], [0.3, 0.0], "twin")
    assert measured.sd == pytest.approx(np.std([0.1, 0.4, 0.2, 0.3, 0.0], ddof=1)) and measured.df == 4
    est = contrast(terms, reference=measured, n_resamples=500)
    half = stats.t.ppf(0.975, 4) * measured.sd * np.sqrt(2)
    assert (est.low, est.high) == pytest.approx((est.mean - half, est.mean + half))
    assert "from the negative control twin" in est.method
    declared = seed_interval(terms, SeedReference(0.5, None, "declared"))
    assert declared[2] - declared[0] == pytest.approx(stats.norm.ppf(0.975) * 0.5 * np.sqrt(2))


def test_the_data_interval_is_scipys_paired_percentile_bootstrap_of_the_seed_means():
    rng = np.random.default_rng(4)
    base = (rng.random((3, 164)) < 0.3).astype(float)
    arm = np.where(rng.random((3, 164)) < 0.2, 1 - base, base)
    est = contrast([Term(1.0, arm, (0, 1, 2)), Term(-1.0, base, (0, 1, 2))], n_resamples=20_000, seed=3)
    b, a = base.mean(axis=0), arm.mean(axis=0)
    ref = stats.bootstrap((b, a), lambda x, y: np.mean(y - x), paired=True, vectorized=False, n_resamples=20_000,
                          method="percentile", random_state=5).confidence_interval
    assert est.data_low == pytest.approx(ref.low, abs=0.006) and est.data_high == pytest.approx(ref.high, abs=0.006)


def test_an_effect_is_claimed_only_when_both_intervals_exclude_zero_on_one_side():
    rng = np.random.default_rng(5)
    seeds = (0, 1, 2, 3, 4)
    base = outcomes(rng, 5, 0.0, seed_sd=0.0)
    big = contrast([Term(1.0, outcomes(rng, 5, 1.0, seed_sd=0.0), seeds), Term(-1.0, base, seeds)], n_resamples=2000)
    assert big.decided and judge(big) == SUPPORTED and judge(big, "negative") == CONTRADICTED
    assert big.p_claim == max(big.p, big.data_p)
    # Every seed shows the same per-unit differences (no seed spread: the interval across seeds
    # is a point away from zero), but those differences are noise around zero: the
    # data-sampling interval keeps the rule from claiming an effect.
    units = np.linspace(-3, 3, 60)
    base = np.stack([units] * 4)
    noisy = base + 0.05 + np.random.default_rng(6).normal(0, 1, 60)
    est = contrast([Term(1.0, noisy, (0, 1, 2, 3)), Term(-1.0, base, (0, 1, 2, 3))], n_resamples=2000)
    assert est.low == est.high != 0 and est.data_low < 0 < est.data_high
    assert not est.decided and judge(est) == UNCLEAR


def test_holm_matches_the_step_down_definition():
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([]) == []


def test_different_unit_sets_in_one_group_are_refused():
    with pytest.raises(ValueError, match="different unit sets"):
        contrast([Term(1.0, np.zeros((2, 3)), (0, 1)), Term(-1.0, np.zeros((2, 4)), (0, 1))])
