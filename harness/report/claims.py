"""Verdicts on the blog's hypotheses, each with its statistic, both intervals and honest words.

Every verdict rests on seeds as the unit (`report/inference.py`): the interval across seeds
decides, the data-sampling bootstrap stands beside it, and an effect is claimed only when
both exclude zero. Which arms take part is the objectives' to say (`ObjectiveConfig.claims`,
objectives/base.py). A collapsed arm (`eval/collapse.py`) or one stuck on a plateau (its
study's `plateau:` rule) takes part in no claim: "not testable", never an MTP effect. The
claim rows form one family; `holm_adjust` adds Holm-adjusted p-values across it.

1. Long sequences (blog claim 2). For every arm whose objective joins "late_positions" (the
   MTP arms, TOP) against its baseline, on the fixed held-out rows: D = R_late - R_early at
   matched overall loss (`matched_position.py`), once per seed, t across seeds. The claim
   predicts D < 0: "supported" if both intervals lie below 0, "contradicted" if above, else
   "not distinguishable"; "not testable" without checkpoint trajectories or when the losses
   are too far apart to match. The unmatched ratio curve is drawn (plots) and its D quoted
   for reference only.
2. Meta vs DeepSeek (blog claim 4): (Meta - STP) - (DeepSeek - STP) = Meta - DeepSeek per
   unit, on pass@k, canonical-solution NLL and held-out loss. Only for pairs matched on what
   the claim does not vary: the same trunk depth and training FLOPs per token within the
   study's tolerance. Otherwise "not testable: arms differ in trunk depth and FLOPs", with the
   unmatched difference quoted for reference. A metric neither arm scores once is not testable.
3. Negative controls (`control_checks`): a control on other seeds must show no gain on any
   metric; a shorter-schedule control (a weaker STP) must show a null matched D, which checks
   that the checkpoint substitution of (1) is itself neutral. Controls are checks, not claims:
   they are not in the Holm family.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.report.arm_rows import NLL_UNIT, gain_estimate, metric_pair, reference_arm
from harness.report.collect import RunRecord
from harness.report.inference import CONTRADICTED, SUPPORTED, UNCLEAR, UNTESTABLE, Estimate, SeedReference, holm, judge
from harness.report.matched_position import matched_late_early
from harness.report.stats import position_ratio

__all__ = ["SUPPORTED", "CONTRADICTED", "UNCLEAR", "UNTESTABLE", "Verdict", "long_sequence", "meta_vs_deepseek",
           "control_checks", "holm_adjust", "excluded", "from_estimate"]


@dataclass
class Verdict:
    claim: str
    arms: str
    statistic: str
    estimate: float | None
    low: float | None  # 95% interval across seeds
    high: float | None
    unit: str
    verdict: str
    text: str
    data_low: float | None = None  # 95% interval from data sampling only (seeds fixed)
    data_high: float | None = None
    p: float | None = None  # the rule's two-sided p (the larger of the two intervals' p)
    method: str = ""
    family: bool = True  # joins the Holm family (claims do; control checks do not)
    holm_p: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _fmt(x: float, unit: str) -> str:
    return f"{x:+.2f}" if "percentage" in unit else f"{x:+.4f}"


def describe(est: Estimate, unit: str, units: str = "") -> str:
    """'+0.0123 (95% CI across seeds [..], paired t across 5 seeds; data sampling only [..])'."""
    short = unit.split(" (")[0]
    seeds = (f"95% CI across seeds [{_fmt(est.low, unit)}, {_fmt(est.high, unit)}] {short}, {est.method}"
             if est.testable else f"no interval across seeds: {est.untestable}")
    over = f" over {est.n_units} {units}" if units else ""
    return (f"{_fmt(est.mean, unit)} ({seeds}; data sampling only [{_fmt(est.data_low, unit)}, "
            f"{_fmt(est.data_high, unit)}]{over})")


def from_estimate(claim: str, arms: str, stat: str, est: Estimate, unit: str, verdict: str, text: str,
                  family: bool = True) -> Verdict:
    return Verdict(claim, arms, stat, est.mean, est.low, est.high, unit, verdict, text, est.data_low, est.data_high,
                   est.p_claim, est.method, family)


def untestable(claim: str, arms: str, stat: str, unit: str, why: str, family: bool = True) -> Verdict:
    return Verdict(claim, arms, stat, None, None, None, unit, UNTESTABLE, f"{UNTESTABLE}: {why}", family=family)


def excluded(*groups: list[RunRecord]) -> str:
    """Why these runs join no verdict (collapsed or stuck), or ''."""
    found = [f"seed {r.seed}: collapsed ({'; '.join(r.collapse)})" for runs in groups for r in runs if r.collapse]
    found += [f"seed {r.seed}: stuck ({'; '.join(r.stuck)})" for runs in groups for r in runs if r.stuck]
    return "; ".join(found)


def holm_adjust(verdicts: list[Verdict]) -> int:
    """Fill `holm_p` across the family (claim rows with a p-value); returns the family's size."""
    members = [v for v in verdicts if v.family and v.p is not None]
    for v, adjusted in zip(members, holm([v.p for v in members])):
        v.holm_p = adjusted
    return len(members)


# -- blog claim 2 -------------------------------------------------------------------------
LATE = "blog claim 2: MTP helps late positions more than early ones"
LATE_STAT = "D = R_late - R_early at matched overall loss (loss ratio arm/baseline, last vs first quarter)"


def long_sequence(groups: dict[str, list[RunRecord]], n_resamples: int = 2000) -> tuple[list[Verdict], dict]:
    """Verdicts per arm whose objective joins the claim ("late_positions": the MTP arms and
    TOP) and per negative control, and the unmatched per-position ratio curves (the plot)."""
    verdicts, curves = [], {}
    for arm, runs in list(groups.items())[1:]:
        baseline = reference_arm(groups, arm)
        if baseline is None or ("late_positions" not in runs[0].claims() and runs[0].control_of is None):
            continue
        control = runs[0].control_of is not None
        label = f"{arm} vs {baseline}" + (" (negative control)" if control else "")
        base, mine = [r.positions for r in groups[baseline]], [r.positions for r in runs]
        if any(p is None for p in base + mine) or len({p.shape for p in base + mine}) > 1:
            verdicts.append(untestable(LATE, label, LATE_STAT, "ratio", "no per-position losses on common held-out "
                                       "rows (eval/per_position.npy)", family=not control))
            continue
        raw = curves[arm] = position_ratio([p.curve for p in base], [p.curve for p in mine])
        why = excluded(groups[baseline], runs)
        if why:
            verdicts.append(untestable(LATE, label, LATE_STAT, "ratio", why + "; gain not interpretable",
                                       family=not control))
            continue
        verdicts.append(_matched(label, groups[baseline], runs, raw.late_minus_early, n_resamples, family=not control))
    return verdicts, curves


def _matched(label: str, base_runs, runs, unmatched_d: float, n_resamples: int, family: bool) -> Verdict:
    unmatched = f"unmatched D = {unmatched_d:+.4f}, for reference only"
    trajectories = [r.positions.trajectory for r in base_runs], [r.positions.trajectory for r in runs]
    if any(t is None for t in trajectories[0] + trajectories[1]):
        return untestable(LATE, label, LATE_STAT, "ratio", "no checkpoint trajectories to match overall loss "
                          f"(eval.trajectory); {unmatched}", family)
    try:
        found = matched_late_early(*trajectories, [r.seed for r in base_runs], [r.seed for r in runs],
                                   n_resamples=n_resamples)
    except ValueError as exc:  # trajectories of different rows
        return untestable(LATE, label, LATE_STAT, "ratio", str(exc), family)
    if found.estimate is None:
        return untestable(LATE, label, LATE_STAT, "ratio", f"{found.why}; {unmatched}", family)
    est = found.estimate
    verdict = judge(est, claim_predicts="negative")
    matched = "the baseline" if found.worse == "arm" else "the arm"
    text = f"{verdict}: D = {describe(est, 'ratio', 'documents')}, {matched} matched to the other's loss; {unmatched}"
    return from_estimate(LATE, label, LATE_STAT, est, "ratio", verdict, text, family)


# -- blog claim 4 -------------------------------------------------------------------------
CHAINED = "blog claim 4: Meta's independent heads gain as much as DeepSeek's chained modules"


def _pairs(groups: dict[str, list[RunRecord]]) -> list[tuple[str, str]]:
    """(independent-heads arm, chained-modules arm) pairs, by the claims their objectives join."""
    arms = [a for a in list(groups)[1:] if groups[a][0].objective_cfg is not None and not groups[a][0].control_of]
    n = {a: groups[a][0].objective_cfg.n_predict for a in arms}
    metas = [a for a in arms if "independent_heads" in groups[a][0].claims()]
    deepseeks = [a for a in arms if "chained_modules" in groups[a][0].claims()]
    pairs = [(m, d) for m in metas for d in deepseeks if reference_arm(groups, m) == reference_arm(groups, d)]
    same = [(m, d) for m, d in pairs if n[m] == n[d]]
    return same or pairs


def _lower_is_better(metric: str) -> bool:
    return metric == "val_loss" or metric.startswith("nll/")


def _unit(metric: str) -> str:
    if metric == "val_loss":
        return "nats (lower is better)"
    return NLL_UNIT if metric.startswith("nll/") else "percentage points"


def mismatch(meta: RunRecord, deep: RunRecord, tolerance: float) -> str:
    """How two arms differ in what claim 4 does not vary (trunk depth, training FLOPs per
    token), or '' when they are matched within `tolerance`."""
    depths = meta.trunk_layers, deep.trunk_layers
    flops = [float(r.plan.get("flops_per_token", {}).get("total", 0.0)) for r in (meta, deep)]
    parts = []
    if None in depths or depths[0] != depths[1]:
        parts.append(f"trunk depth ({depths[0]} vs {depths[1]} layers)")
    if not flops[1] or abs(flops[0] / flops[1] - 1) > tolerance:
        ratio = flops[0] / flops[1] if flops[1] else float("nan")
        parts.append(f"FLOPs per token (Meta {ratio:.2f}x DeepSeek's)")
    return " and ".join(parts)


def meta_vs_deepseek(groups: dict[str, list[RunRecord]], n_resamples: int = 10_000, tolerance: float = 0.01,
                     references: dict[str, SeedReference] | None = None) -> list[Verdict]:
    out = []
    for m, d in _pairs(groups):
        meta, deep = groups[m], groups[d]
        label, stat = f"{m} vs {d}", "(Meta - STP) - (DeepSeek - STP)"
        why = excluded(meta, deep)
        if why:
            out.append(untestable(CHAINED, label, stat, "", why + "; gain not interpretable"))
            continue
        metrics = sorted(set(meta[0].metrics()) & set(deep[0].metrics()))
        nll = sorted(set(meta[0].nll_metrics()) & set(deep[0].nll_metrics()))
        rows = [_difference(meta, deep, metric, label, n_resamples, (references or {}).get(metric))
                for metric in [*metrics, *nll, "val_loss"]]
        differs = mismatch(meta[0], deep[0], tolerance)
        if differs:  # the difference is quoted, not judged: the arms differ in more than heads vs modules
            quoted = "; ".join(f"{v.statistic.split(' on ')[-1]} {_fmt(v.estimate, v.unit)}" for v in rows
                               if v.estimate is not None and v.verdict != UNTESTABLE)
            out.append(untestable(CHAINED, label, stat, "", f"arms differ in {differs}; no view of this study "
                                  f"matches them (unmatched differences, for reference only: {quoted or 'none'})"))
            continue
        out += rows
    return out


def _difference(meta, deep, metric: str, label: str, n_resamples: int, reference) -> Verdict:
    unit = _unit(metric)
    stat = f"(Meta - STP) - (DeepSeek - STP) on {metric}"
    est = gain_estimate(deep, meta, metric, n_resamples=n_resamples, reference=reference)  # meta - deepseek
    if est is None:
        missing = "per-position losses" if metric == "val_loss" else "per-problem outcomes"
        return untestable(CHAINED, label, stat, unit, f"no paired {missing} for both arms")
    pair = metric_pair(deep, meta, metric)
    if not _lower_is_better(metric) and not (pair[0].any() or pair[1].any()):
        return untestable(CHAINED, label, stat, unit, f"neither arm solves a single problem ({metric})")
    if not est.testable:
        return from_estimate(CHAINED, label, stat, est, unit, UNTESTABLE,
                             f"{UNTESTABLE}: {est.untestable}; difference {describe(est, unit)}")
    better = "lower loss" if _lower_is_better(metric) else "larger gain"
    if est.decided:
        meta_wins = est.mean < 0 if _lower_is_better(metric) else est.mean > 0
        verdict = f"{'Meta' if meta_wins else 'DeepSeek'} {better} at this scale"
        text = f"{verdict}: difference {describe(est, unit)}"
    else:
        bound = max(abs(est.low), abs(est.high))
        verdict = UNCLEAR
        text = (f"{UNCLEAR}: difference {describe(est, unit)}; consistent with equal gains, and rules out differences "
                f"above {bound:.4g} {unit.split(' (')[0]} at 95% across seeds")
    return from_estimate(CHAINED, label, stat, est, unit, verdict, text)


# -- negative controls --------------------------------------------------------------------
CONTROL = "negative control: the same arm with other seeds shows no effect"
SHORTER = "negative control: a shorter schedule of the same arm shows no late-vs-early effect at matched loss"


def control_checks(groups: dict[str, list[RunRecord]], rows, position: list[Verdict]) -> list[Verdict]:
    """A control on other seeds: every gain it shows over its baseline must be "not
    distinguishable". A shorter-schedule control: only its matched late-vs-early D must be (its
    gains are a weaker run's, by design). One row per check; a control whose intervals exclude
    zero says the protocol finds effects where there are none."""
    out = []
    for row in rows:
        if row.control_of is None:
            continue
        shorter = groups[row.arm][0].schedule_fraction is not None
        if not shorter:
            for metric, gain in sorted(row.gains.items()):
                if gain.get("note"):  # a pass@k nobody solves measures nothing
                    continue
                est = Estimate.from_dict(gain)
                null = not est.decided
                word = "null, as it must be" if null else "NOT null: the protocol reports an effect that is not there"
                text = f"{word}: {metric} gain {describe(est, gain['unit'])}"
                out.append(from_estimate(CONTROL, f"{row.arm} vs {row.baseline or next(iter(groups))}",
                                         f"gain on {metric}", est, gain["unit"], word, text, family=False))
        for v in position:
            if v.arms.startswith(f"{row.arm} vs "):
                word = (UNTESTABLE if v.verdict == UNTESTABLE else "null, as it must be" if v.verdict == UNCLEAR
                        else f"NOT null ({v.verdict})")
                out.append(Verdict(SHORTER if shorter else CONTROL, v.arms, v.statistic, v.estimate, v.low, v.high,
                                   v.unit, word, v.text, v.data_low, v.data_high, v.p, v.method, family=False))
    return out
