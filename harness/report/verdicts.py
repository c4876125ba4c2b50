"""Verdicts on the blog's hypotheses, each with the statistic, its 95% interval and honest words.

Which arms take part is the objectives' to say (`ObjectiveConfig.claims`, objectives/base.py).

1. Long sequences (blog claim 2). For every arm whose objective joins "late_positions" (the
   MTP arms, TOP) against the baseline, on the fixed held-out rows of
   `eval/per_position.npy` (the same rows for every arm, so paired):
   R_Q = (arm's mean next-token loss over the positions in Q, all rows) / (baseline's),
   for Q = the first quarter and the last quarter of the S positions, and the statistic is
   D = R_late - R_early. The claim predicts D < 0 (MTP's advantage grows along the sequence).
   Interval: percentile bootstrap over rows, shared by both arms (and over seeds per arm,
   two-level, with several seeds): `stats.position_ratio`. The least-squares slope of the
   per-position ratio against relative position is reported beside it.
   Verdict: "supported at this scale" if the whole interval is below 0, "contradicted at
   this scale" if above, otherwise "not distinguishable at this scale".
2. Meta vs DeepSeek (blog claim 4). For each arm with independent heads ("independent_heads":
   Meta) and each with chained modules ("chained_modules": DeepSeek) predicting the same
   number of tokens (every Meta x DeepSeek pair if no such pair exists): the difference of
   their gains over the baseline, (Meta - STP) - (DeepSeek - STP) = Meta - DeepSeek per problem, so it is
   `stats.paired_gain(deepseek, meta)`: on pass@k per task (percentage points, bootstrap
   over problems) and on held-out next-token loss (nats, bootstrap over rows). An interval
   that excludes zero says which gains more; one that includes zero is "not distinguishable
   at this scale", which is consistent with equal gains but does not establish them (the
   interval bounds how large a difference could hide). A task neither arm solves once is
   "not testable".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.report.collect import RunRecord
from harness.report.arm_rows import outcome_matrix, rows_matrix
from harness.report.stats import paired_gain, position_ratio

SUPPORTED, CONTRADICTED, UNCLEAR, UNTESTABLE = (
    "supported at this scale", "contradicted at this scale", "not distinguishable at this scale", "not testable")


@dataclass
class Verdict:
    claim: str
    arms: str
    statistic: str
    estimate: float | None
    low: float | None
    high: float | None
    unit: str
    verdict: str
    text: str

    def as_dict(self) -> dict:
        return asdict(self)


def _fmt(x: float, unit: str) -> str:
    return f"{x:+.2f}" if "percentage" in unit else f"{x:+.4f}"


def _ci(low: float, high: float, unit: str) -> str:
    return f"95% CI [{_fmt(low, unit)}, {_fmt(high, unit)}] {unit}"


def long_sequence(groups: dict[str, list[RunRecord]], n_resamples: int = 2000) -> tuple[list[Verdict], dict]:
    """Verdicts per arm whose objective joins the claim ("late_positions": the MTP arms and
    TOP), and the per-position ratio curves (for the plot)."""
    baseline = next(iter(groups))
    base = [r.per_position for r in groups[baseline]]
    claim = "blog claim 2: MTP helps late positions more than early ones"
    stat = "D = R_late - R_early (loss ratio MTP/STP, last vs first quarter of positions)"
    verdicts, curves = [], {}
    for arm, runs in list(groups.items())[1:]:
        if "late_positions" not in runs[0].claims():
            continue
        arrays = [r.per_position for r in runs]
        if any(a is None for a in base + arrays) or len({a.shape for a in base + arrays}) > 1:
            verdicts.append(Verdict(claim, f"{arm} vs {baseline}", stat, None, None, None, "ratio", UNTESTABLE,
                                    "no per-position losses on common held-out rows (eval/per_position.npy)"))
            continue
        result = position_ratio(base, arrays, n_resamples=n_resamples)
        curves[arm] = result
        d = result.late_minus_early
        verdict = SUPPORTED if d.high < 0 else CONTRADICTED if d.low > 0 else UNCLEAR
        text = (f"{verdict}: D = {d.estimate:+.4f} (95% CI [{d.low:+.4f}, {d.high:+.4f}]) over {result.n_rows} rows; "
                f"slope of the ratio from first to last position {result.slope.estimate:+.4f} "
                f"(95% CI [{result.slope.low:+.4f}, {result.slope.high:+.4f}])")
        verdicts.append(Verdict(claim, f"{arm} vs {baseline}", stat, d.estimate, d.low, d.high, "ratio", verdict, text))
    return verdicts, curves


def _pairs(groups: dict[str, list[RunRecord]]) -> list[tuple[str, str]]:
    """(independent-heads arm, chained-modules arm) pairs, by the claims their objectives join."""
    arms = [a for a in list(groups)[1:] if groups[a][0].objective_cfg is not None]
    n = {a: groups[a][0].objective_cfg.n_predict for a in arms}
    metas = [a for a in arms if "independent_heads" in groups[a][0].claims()]
    deepseeks = [a for a in arms if "chained_modules" in groups[a][0].claims()]
    pairs = [(m, d) for m in metas for d in deepseeks]
    same = [(m, d) for m, d in pairs if n[m] == n[d]]
    return same or pairs


def _difference(meta, deep, metric: str, unit: str, claim: str, arms: str, n_resamples: int) -> Verdict:
    if metric == "val_loss":
        b, a = rows_matrix(deep), rows_matrix(meta)
        pair = None if b is None or a is None or b.shape != a.shape else (b, a)
        scale = 1.0
    else:
        pair = outcome_matrix(deep, meta, metric)
        scale = 100.0
    stat = f"(Meta - STP) - (DeepSeek - STP) on {metric}"
    if pair is None:
        missing = "per-position losses (eval/per_position.npy)" if metric == "val_loss" else "per-problem outcomes"
        return Verdict(claim, arms, stat, None, None, None, unit, UNTESTABLE, f"no paired {missing} for both arms")
    if metric != "val_loss" and not (pair[0].any() or pair[1].any()):
        return Verdict(claim, arms, stat, 0.0, 0.0, 0.0, unit, UNTESTABLE,
                       f"{UNTESTABLE}: neither arm solves a single problem ({metric})")
    g = paired_gain(*pair, n_resamples=n_resamples)
    est, low, high = g.mean * scale, g.low * scale, g.high * scale
    better = "lower loss" if metric == "val_loss" else "larger gain"
    if g.excludes_zero:
        winner = ("Meta" if est > 0 else "DeepSeek") if metric != "val_loss" else ("Meta" if est < 0 else "DeepSeek")
        text = f"{winner} has the {better}: difference {_fmt(est, unit)} ({_ci(low, high, unit)})"
        verdict = f"{winner} {better} at this scale"
    else:
        bound = max(abs(low), abs(high))
        text = (f"{UNCLEAR}: difference {_fmt(est, unit)} ({_ci(low, high, unit)}); consistent with equal gains, "
                f"and rules out differences above {bound:.4g} {unit.split(' (')[0]} at 95%")
        verdict = UNCLEAR
    return Verdict(claim, arms, stat, est, low, high, unit, verdict, text)


def meta_vs_deepseek(groups: dict[str, list[RunRecord]], n_resamples: int = 10_000) -> list[Verdict]:
    claim = "blog claim 4: Meta's independent heads gain as much as DeepSeek's chained modules"
    out = []
    for m, d in _pairs(groups):
        meta, deep = groups[m], groups[d]
        metrics = sorted(set(meta[0].metrics()) & set(deep[0].metrics()))
        for metric in [*metrics, "val_loss"]:
            unit = "nats (lower is better)" if metric == "val_loss" else "percentage points"
            out.append(_difference(meta, deep, metric, unit, claim, f"{m} vs {d}", n_resamples))
    return out
