"""Seed-level inference: the interval across seeds that decides every verdict, the
data-sampling interval beside it, and the rule that turns the two into words.

Why seeds. Training noise (initialisation and data order) moves an arm's score from one seed
to the next; a claim holds only if a rerun with other seeds would find it again. So the seed
is the unit: each seed gives one number (a mean over the same problems, documents or stories)
and the interval runs across those numbers. A bootstrap that resamples 2-3 seed means cannot
do this: at two seeds it found a non-existent effect up to 27% of the time
(`benchmarks/bench_coverage.py` reproduces that figure beside this module's).

- **Paired** (every term ran the same seeds; arms that share a seed share its data order, the
  batch at step k depends only on (seed, k)): per seed, c_s = sum_t w_t mean_u y_t[s, u]; the
  interval is Student t with n-1 degrees of freedom, mean(c) +- t * sd(c) / sqrt(n). An exact
  sign-flip test was not chosen: with n <= 5 seeds it cannot reach p < 0.05 at all (its
  smallest two-sided p is 2 / 2^n = 0.0625 at n = 5), so it could never say anything at the
  seed counts people can afford; t is exact for normal seed effects and robust near them.
- **Unpaired** (seed sets disjoint, e.g. a negative control on other seeds): Welch,
  sum_t w_t mean_t +- t_df * sqrt(sum_t w_t^2 s_t^2 / n_t), Welch-Satterthwaite df.
- **Partly shared** seed sets: paired on the seeds every term ran when there are two or more
  (the method says which were left out); otherwise not testable.
- **One seed** per term: no spread to measure, "not testable: one seed", unless a reference
  seed SD is known: measured by the study's negative control (its seeds and its arm's pooled,
  t with their degrees of freedom) or declared in the study (`seed_sd:`, normal quantile); it
  is named in the row. The terms are then taken as independent.
- **Data sampling only**: a percentile bootstrap over the units (problems, documents,
  stories) of the seed-averaged outcomes, the seeds fixed: how much the choice of units alone
  moves the estimate. Terms scoring the same units resample them together (the pairing).

The rule (`judge`): an effect is claimed only when the seed interval and the data-sampling
interval both exclude zero on the same side: it must survive both a rerun with other seeds
and a resampling of the problems. This intersection-union rule holds the false-positive rate
at or below each interval's own 5%; its p-value is the larger of the two.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats as scipy_stats

SUPPORTED, CONTRADICTED, UNCLEAR, UNTESTABLE = (
    "supported at this scale", "contradicted at this scale", "not distinguishable at this scale", "not testable")
ONE_SEED = "one seed: no spread across seeds to measure (run more seeds, or give the study a negative control)"


@dataclass(frozen=True)
class Term:
    """One arm's outcomes in a contrast: weight x (mean over its units, per seed)."""

    weight: float
    outcomes: np.ndarray  # [seeds, units]
    seeds: tuple[int, ...]
    units: str = "units"  # terms with the same key score the same units in the same order


@dataclass(frozen=True)
class SeedReference:
    """A known seed-to-seed SD of one arm's mean (for one-seed comparisons), and where from."""

    sd: float
    df: float | None  # None: declared, taken as exact (normal quantile)
    source: str


@dataclass(frozen=True)
class Estimate:
    """A contrast (a gain, a difference of gains, a statistic) with both of its intervals."""

    mean: float
    low: float | None  # across seeds; None when not testable
    high: float | None
    p: float | None
    df: float | None
    method: str
    data_low: float
    data_high: float
    data_p: float
    n_units: int
    n_seeds: tuple[int, ...]
    untestable: str | None = None

    @property
    def testable(self) -> bool:
        return self.low is not None

    @property
    def decided(self) -> bool:
        """Both intervals exclude zero, on the same side: the effect is claimed."""
        if not self.testable:
            return False
        return (self.low > 0 and self.data_low > 0) or (self.high < 0 and self.data_high < 0)

    @property
    def p_claim(self) -> float | None:
        """The rule's p-value: the larger of the two (intersection-union)."""
        return None if self.p is None else max(self.p, self.data_p)

    def scaled(self, factor: float) -> "Estimate":
        """The same estimate in other units (fractions -> percentage points)."""
        s = (lambda x: None if x is None else x * factor)
        lo, hi = (s(self.low), s(self.high)) if factor > 0 else (s(self.high), s(self.low))
        dlo, dhi = (self.data_low * factor, self.data_high * factor)
        return replace(self, mean=self.mean * factor, low=lo, high=hi,
                       data_low=min(dlo, dhi), data_high=max(dlo, dhi))

    def as_dict(self) -> dict:
        out = asdict(self)
        out["n_seeds"] = list(self.n_seeds)
        out["excludes_zero"] = self.decided
        return out

    @classmethod
    def from_dict(cls, found: dict) -> Estimate:
        """The estimate `as_dict` wrote (a gain of the arms table, with its extra keys)."""
        return cls(**{k: found[k] for k in cls.__dataclass_fields__ if k != "n_seeds"},
                   n_seeds=tuple(found["n_seeds"]))


def judge(est: Estimate, claim_predicts: str = "positive") -> str:
    """The verdict word for a claim that predicts a positive (or negative) contrast."""
    if not est.testable:
        return UNTESTABLE
    if not est.decided:
        return UNCLEAR
    positive = est.low > 0
    return SUPPORTED if positive == (claim_predicts == "positive") else CONTRADICTED


def holm(ps: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values that exist (None stays None): controls the
    chance of any false claim across the family at the nominal level, under any dependence."""
    present = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m, out, running = len(present), list(ps), 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# -- the interval across seeds ------------------------------------------------------------
def _t_interval(mean: float, se: float, df: float, confidence: float) -> tuple[float, float, float]:
    if se == 0:  # every seed gave the same number: no spread, nothing but that number
        return mean, mean, 0.0 if mean != 0 else 1.0
    q = scipy_stats.t.ppf(0.5 + confidence / 2, df) if math.isfinite(df) else scipy_stats.norm.ppf(0.5 + confidence / 2)
    z = abs(mean) / se
    p = float(2 * (scipy_stats.t.sf(z, df) if math.isfinite(df) else scipy_stats.norm.sf(z)))
    return mean - q * se, mean + q * se, p


def _seed_means(terms: list[Term]) -> list[dict[int, float]]:
    return [dict(zip(t.seeds, np.asarray(t.outcomes, dtype=float).mean(axis=1).tolist())) for t in terms]


def seed_interval(terms: list[Term], reference: SeedReference | None = None, confidence: float = 0.95):
    """(mean, low, high, p, df, method, why-untestable) across seeds, for sum_t w_t mean_t."""
    means = _seed_means(terms)
    mean = float(sum(t.weight * np.mean(list(m.values())) for t, m in zip(terms, means)))
    sets = [set(t.seeds) for t in terms]
    common = set.intersection(*sets)
    disjoint = all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])
    if len(common) >= 2 and not disjoint:
        seeds = sorted(common)
        values = np.array([sum(t.weight * m[s] for t, m in zip(terms, means)) for s in seeds])
        n = len(values)
        low, high, p = _t_interval(float(values.mean()), float(values.std(ddof=1) / math.sqrt(n)), n - 1, confidence)
        left = sorted(set.union(*sets) - common)
        method = f"paired t across {n} seeds" + (f" (seeds {left} not run by every arm, left out)" if left else "")
        return float(values.mean()), low, high, p, float(n - 1), method, None
    sizes = [len(s) for s in sets]
    if disjoint and min(sizes) >= 2:
        parts = [t.weight ** 2 * np.var(list(m.values()), ddof=1) / len(m) for t, m in zip(terms, means)]
        se2 = float(sum(parts))
        df = se2 ** 2 / sum(v ** 2 / (n - 1) for v, n in zip(parts, sizes)) if se2 > 0 else float(sum(sizes) - len(sizes))
        low, high, p = _t_interval(mean, math.sqrt(se2), df, confidence)
        return mean, low, high, p, float(df), f"Welch t across {'+'.join(map(str, sizes))} seeds (different seeds)", None
    if min(sizes) >= 2 or len(common) == 1 and max(sizes) > 1:
        return mean, None, None, None, None, "", ("seed sets overlap in only one seed: neither paired by seed nor "
                                                  "independent (run the arms on the same seeds)")
    if reference is None:
        return mean, None, None, None, None, "", ONE_SEED
    se = reference.sd * math.sqrt(sum(t.weight ** 2 / len(s) for t, s in zip(terms, sets)))
    df = float("inf") if reference.df is None else reference.df
    low, high, p = _t_interval(mean, se, df, confidence)
    return mean, low, high, p, reference.df, f"one seed; seed SD {reference.sd:.4g} {reference.source}", None


# -- the interval from data sampling only ------------------------------------------------
def data_interval(terms: list[Term], confidence: float = 0.95, n_resamples: int = 10_000,
                  seed: int = 0) -> tuple[float, float, float, int]:
    """(low, high, p, units): percentile bootstrap over units of the seed-averaged outcomes;
    terms that share a units key are resampled together."""
    rng = np.random.default_rng(seed)
    averaged = [np.asarray(t.outcomes, dtype=float).mean(axis=0) for t in terms]
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(terms):
        groups.setdefault(t.units, []).append(i)
    for key, members in groups.items():
        sizes = {len(averaged[i]) for i in members}
        if len(sizes) > 1:
            raise ValueError(f"terms on units {key!r} cover different unit sets ({sorted(sizes)})")
    draws = np.zeros(n_resamples)
    chunk = max(1, 2_000_000 // max(len(a) for a in averaged))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        for members in groups.values():
            n = len(averaged[members[0]])
            picks = rng.integers(0, n, size=(size, n))  # one resample of the units per row, shared by the group
            for i in members:
                draws[start:start + size] += terms[i].weight * averaged[i][picks].mean(axis=1)
    return (*_percentile(draws, confidence), len(averaged[0]))


def _percentile(draws: np.ndarray, confidence: float) -> tuple[float, float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    below, above = float(np.mean(draws <= 0)), float(np.mean(draws >= 0))
    return float(low), float(high), min(1.0, 2 * min(below, above))


def contrast(terms: list[Term], *, reference: SeedReference | None = None, confidence: float = 0.95,
             n_resamples: int = 10_000, seed: int = 0) -> Estimate:
    """sum_t w_t (mean of term t): across seeds (the verdict's interval) and over units with the
    seeds fixed (data sampling only). A gain is [Term(+1, arm), Term(-1, baseline)]."""
    mean, low, high, p, df, method, why = seed_interval(terms, reference, confidence)
    dlow, dhigh, dp, n_units = data_interval(terms, confidence, n_resamples, seed)
    return Estimate(mean, low, high, p, df, method, dlow, dhigh, dp, n_units,
                    tuple(len(t.seeds) for t in terms), why)


def per_seed(values: list[float], data_draws: np.ndarray, point: float | None = None, *, confidence: float = 0.95,
             n_units: int = 0, n_seeds: tuple[int, ...] = (), note: str = "") -> Estimate:
    """A statistic that is not a mean of outcomes (late-vs-early D at matched loss): computed
    once per seed (pair), Student t across them; `data_draws` are its bootstrap over units with
    the seeds' data averaged, `point` its value on those averages (default: the mean over seeds)."""
    v = np.asarray(values, dtype=float)
    dlow, dhigh, dp = _percentile(np.asarray(data_draws, dtype=float), confidence)
    mean = float(v.mean()) if point is None else float(point)
    if len(v) < 2:
        return Estimate(mean, None, None, None, None, "", dlow, dhigh, dp, n_units, n_seeds, ONE_SEED)
    low, high, p = _t_interval(float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))), len(v) - 1, confidence)
    method = f"t across {len(v)} seeds" + (f" ({note})" if note else "")
    return Estimate(float(v.mean()), low, high, p, float(len(v) - 1), method, dlow, dhigh, dp, n_units, n_seeds)


def reference_from_control(control_means: list[float], arm_means: list[float], control: str) -> SeedReference | None:
    """The seed SD of an arm's mean, from a negative control (the same arm on other seeds) and
    its arm: under the control's null both are draws of one distribution, so their per-seed
    means pool into one sample (n - 1 degrees of freedom). None with fewer than 2 values."""
    values = np.asarray([*control_means, *arm_means], dtype=float)
    if len(values) < 2:
        return None
    return SeedReference(float(values.std(ddof=1)), float(len(values) - 1),
                         f"from the negative control {control} and its arm ({len(values)} seeds)")
