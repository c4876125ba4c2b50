"""Verdicts on the blog's hypotheses, each with the statistic, its 95% interval and honest words.

Which arms take part is the objectives' to say (`ObjectiveConfig.claims`, objectives/base.py).
A collapsed arm (any seed flagged by `eval/collapse.py`) takes part in no claim: its verdict
is "not testable: collapsed", never an MTP effect. A negative control (`control_of`) is
judged like an arm and must come out null (`control_checks`).

1. Long sequences (blog claim 2). For every arm whose objective joins "late_positions" (the
   MTP arms, TOP) against the baseline, on the fixed held-out rows (one per validation
   document, the same for every arm, so paired): D = R_late - R_early at matched overall
   loss (`matched_position.matched_late_early`: the better run is replaced by its own
   earlier checkpoint of equal mean loss, so that a difference in overall quality cannot
   masquerade as a position effect), where R_Q = arm's mean next-token loss over the
   positions in Q / the baseline's, Q = the first and the last quarter of the window. The
   claim predicts D < 0. Interval: percentile bootstrap over documents, shared by both arms,
   two-level over seeds. Verdict: "supported at this scale" if the whole interval is below
   0, "contradicted at this scale" if above, otherwise "not distinguishable at this scale";
   "not testable" without checkpoint trajectories (eval.trajectory) or when the two losses
   are too far apart to match. The unmatched ratio curve is still drawn (plots), and its D
   is quoted in the text for reference only.
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

import numpy as np

from harness.report.collect import RunRecord
from harness.report.arm_rows import NLL_UNIT, outcome_matrix, reference_arm, rows_matrix
from harness.report.matched_position import matched_late_early
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


def _collapsed(runs: list[RunRecord]) -> list[str]:
    return [f"seed {r.seed}: {'; '.join(r.collapse)}" for r in runs if r.collapse]


def long_sequence(groups: dict[str, list[RunRecord]], n_resamples: int = 2000) -> tuple[list[Verdict], dict]:
    """Verdicts per arm whose objective joins the claim ("late_positions": the MTP arms and
    TOP) and per negative control, and the unmatched per-position ratio curves (the plot)."""
    claim = "blog claim 2: MTP helps late positions more than early ones"
    stat = "D = R_late - R_early at matched overall loss (loss ratio arm/STP, last vs first quarter)"
    verdicts, curves = [], {}
    for arm, runs in list(groups.items())[1:]:
        baseline = reference_arm(groups, arm)
        if baseline is None or ("late_positions" not in runs[0].claims() and runs[0].control_of is None):
            continue
        base = [r.per_position for r in groups[baseline]]
        label = f"{arm} vs {baseline}" + (" (negative control)" if runs[0].control_of else "")
        arrays = [r.per_position for r in runs]
        if any(a is None for a in base + arrays) or len({a.shape for a in base + arrays}) > 1:
            verdicts.append(Verdict(claim, label, stat, None, None, None, "ratio", UNTESTABLE,
                                    "no per-position losses on common held-out rows (eval/per_position.npy)"))
            continue
        raw = curves[arm] = position_ratio(base, arrays, n_resamples=n_resamples)
        collapsed = _collapsed(groups[baseline]) + _collapsed(runs)
        if collapsed:
            verdicts.append(Verdict(claim, label, stat, None, None, None, "ratio", UNTESTABLE,
                                    f"{UNTESTABLE}: collapsed ({'; '.join(collapsed)}); gain not interpretable"))
            continue
        verdicts.append(_matched_verdict(claim, label, stat, groups[baseline], runs, raw, n_resamples))
    return verdicts, curves


def _matched_verdict(claim, label, stat, base_runs, runs, raw, n_resamples) -> Verdict:
    unmatched = f"unmatched D = {raw.late_minus_early.estimate:+.4f}, for reference only"
    trajectories = [r.trajectory for r in base_runs], [r.trajectory for r in runs]
    if any(t is None for t in trajectories[0] + trajectories[1]):
        return Verdict(claim, label, stat, None, None, None, "ratio", UNTESTABLE,
                       f"{UNTESTABLE}: no checkpoint trajectories to match overall loss (eval.trajectory); {unmatched}")
    try:
        found = matched_late_early(np.stack(trajectories[0]), np.stack(trajectories[1]), n_resamples=n_resamples)
    except ValueError as exc:  # trajectories of different lengths or rows
        return Verdict(claim, label, stat, None, None, None, "ratio", UNTESTABLE, f"{UNTESTABLE}: {exc}")
    if found.d is None:
        return Verdict(claim, label, stat, None, None, None, "ratio", UNTESTABLE,
                       f"{UNTESTABLE}: the two runs' losses are too far apart to match ({found.matched_fraction:.0%} "
                       f"of resamples matched; train longer or keep earlier checkpoints); {unmatched}")
    d = found.d
    verdict = SUPPORTED if d.high < 0 else CONTRADICTED if d.low > 0 else UNCLEAR
    matched = "the baseline" if found.worse == "arm" else "the arm"
    text = (f"{verdict}: D = {d.estimate:+.4f} (95% CI [{d.low:+.4f}, {d.high:+.4f}]) over {found.n_rows} documents, "
            f"{found.n_seeds[0]}+{found.n_seeds[1]} seeds, {matched} matched to the other's loss; {unmatched}")
    return Verdict(claim, label, stat, d.estimate, d.low, d.high, "ratio", verdict, text)


def _pairs(groups: dict[str, list[RunRecord]]) -> list[tuple[str, str]]:
    """(independent-heads arm, chained-modules arm) pairs, by the claims their objectives join."""
    arms = [a for a in list(groups)[1:] if groups[a][0].objective_cfg is not None]
    n = {a: groups[a][0].objective_cfg.n_predict for a in arms}
    metas = [a for a in arms if "independent_heads" in groups[a][0].claims()]
    deepseeks = [a for a in arms if "chained_modules" in groups[a][0].claims()]
    pairs = [(m, d) for m in metas for d in deepseeks if reference_arm(groups, m) == reference_arm(groups, d)]
    same = [(m, d) for m, d in pairs if n[m] == n[d]]
    return same or pairs


def _lower_is_better(metric: str) -> bool:
    return metric == "val_loss" or metric.startswith("nll/")


def _difference(meta, deep, metric: str, unit: str, claim: str, arms: str, n_resamples: int) -> Verdict:
    if metric == "val_loss":
        b, a = rows_matrix(deep), rows_matrix(meta)
        pair = None if b is None or a is None or b.shape != a.shape else (b, a)
    else:
        pair = outcome_matrix(deep, meta, metric)
    scale = 1.0 if _lower_is_better(metric) else 100.0
    stat = f"(Meta - STP) - (DeepSeek - STP) on {metric}"
    if pair is None:
        missing = "per-position losses (eval/per_position.npy)" if metric == "val_loss" else "per-problem outcomes"
        return Verdict(claim, arms, stat, None, None, None, unit, UNTESTABLE, f"no paired {missing} for both arms")
    if not _lower_is_better(metric) and not (pair[0].any() or pair[1].any()):
        return Verdict(claim, arms, stat, 0.0, 0.0, 0.0, unit, UNTESTABLE,
                       f"{UNTESTABLE}: neither arm solves a single problem ({metric})")
    g = paired_gain(*pair, n_resamples=n_resamples)
    est, low, high = g.mean * scale, g.low * scale, g.high * scale
    better = "lower loss" if _lower_is_better(metric) else "larger gain"
    if g.excludes_zero:
        meta_wins = est < 0 if _lower_is_better(metric) else est > 0
        winner = "Meta" if meta_wins else "DeepSeek"
        text = f"{winner} has the {better}: difference {_fmt(est, unit)} ({_ci(low, high, unit)})"
        verdict = f"{winner} {better} at this scale"
    else:
        bound = max(abs(low), abs(high))
        text = (f"{UNCLEAR}: difference {_fmt(est, unit)} ({_ci(low, high, unit)}); consistent with equal gains, "
                f"and rules out differences above {bound:.4g} {unit.split(' (')[0]} at 95%")
        verdict = UNCLEAR
    return Verdict(claim, arms, stat, est, low, high, unit, verdict, text)


def _unit(metric: str) -> str:
    if metric == "val_loss":
        return "nats (lower is better)"
    return NLL_UNIT if metric.startswith("nll/") else "percentage points"


def meta_vs_deepseek(groups: dict[str, list[RunRecord]], n_resamples: int = 10_000) -> list[Verdict]:
    claim = "blog claim 4: Meta's independent heads gain as much as DeepSeek's chained modules"
    out = []
    for m, d in _pairs(groups):
        meta, deep = groups[m], groups[d]
        collapsed = _collapsed(meta) + _collapsed(deep)
        if collapsed:
            out.append(Verdict(claim, f"{m} vs {d}", "(Meta - STP) - (DeepSeek - STP)", None, None, None, "",
                               UNTESTABLE,
                               f"{UNTESTABLE}: collapsed ({'; '.join(collapsed)}); gain not interpretable"))
            continue
        metrics = sorted(set(meta[0].metrics()) & set(deep[0].metrics()))
        nll = sorted(set(meta[0].nll_metrics()) & set(deep[0].nll_metrics()))
        for metric in [*metrics, *nll, "val_loss"]:
            out.append(_difference(meta, deep, metric, _unit(metric), claim, f"{m} vs {d}", n_resamples))
    return out


def control_checks(groups: dict[str, list[RunRecord]], rows, position: list[Verdict]) -> list[Verdict]:
    """A negative control repeats an arm with other seeds: every gain it shows over the baseline
    and its late-vs-early verdict must be "not distinguishable". One row per check; a control
    whose interval excludes zero says the protocol finds effects where there are none."""
    claim = "negative control: the same arm with other seeds shows no effect"
    out = []
    for row in rows:
        if row.control_of is None:
            continue
        for metric, gain in sorted(row.gains.items()):
            if gain.get("note"):  # a pass@k nobody solves measures nothing
                continue
            null = not gain["excludes_zero"]
            verdict = "null, as it must be" if null else "NOT null: the protocol reports an effect that is not there"
            text = (f"{verdict}: {metric} gain {_fmt(gain['mean'], gain['unit'])} "
                    f"({_ci(gain['low'], gain['high'], gain['unit'])})")
            out.append(Verdict(claim, f"{row.arm} vs {row.baseline or next(iter(groups))}", f"gain on {metric}", gain["mean"],
                               gain["low"], gain["high"], gain["unit"], verdict, text))
        for v in position:
            if v.arms.startswith(f"{row.arm} vs "):
                null = v.verdict == UNCLEAR
                word = UNTESTABLE if v.verdict == UNTESTABLE else "null, as it must be" if null else f"NOT null ({v.verdict})"
                out.append(Verdict(claim, v.arms, v.statistic, v.estimate, v.low, v.high, v.unit, word, v.text))
    return out
