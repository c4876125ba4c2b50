"""pass@k against the closed form 1 - C(n-c, k) / C(n, k) on hand-made cases."""

from __future__ import annotations

from math import comb

import pytest

from harness.eval.benchmarks.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (5, 2, 1, 0.4),  # pass@1 is the fraction that passes
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 3, 2, 1.0),  # n - c < k: every draw of 2 contains a pass
        (200, 0, 100, 0.0),
    ],
)
def test_hand_made_cases(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_binomials_on_a_grid():
    for n in range(1, 25):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12), (n, c, k)


def test_large_n_stays_finite():
    assert 0.0 < pass_at_k(1000, 1, 100) < 1.0
    assert pass_at_k(1000, 1, 100) == pytest.approx(0.1, abs=1e-12)  # 1 - C(999,100)/C(1000,100)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_mean_over_problems_leaves_out_k_above_the_smallest_n():
    counts = [(4, 1), (4, 0), (2, 2)]
    result = mean_pass_at_k(counts, [1, 2, 4])
    assert set(result) == {1, 2}
    assert result[1] == pytest.approx((0.25 + 0 + 1) / 3)
    assert result[2] == pytest.approx((0.5 + 0 + 1) / 3)
    assert mean_pass_at_k([], [1]) == {}
