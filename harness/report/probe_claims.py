"""Verdicts on Meta's small-model probe claims (Gloeckle et al. 2024, Sec. 4; docs/FACTS.md).

Each multi-token arm (an objective predicting more than one token, not a negative control,
not collapsed or stuck) is judged against its reference arm (`arm_rows.reference_arm`: the
STP arm of the same model size) on the probe metrics both have. Every interval is across
seeds, with the data-sampling bootstrap over stories / expressions beside it
(`report/inference.py`); an effect is claimed only when both exclude zero.

1. Induction (Sec. 4.1): "MTP improves induction at <= 30M parameters". Statistic: the gain
   in induction accuracy (arm - STP, percentage points) over test stories. Every model here
   is far below 30M, so the claim applies to each size. When neither arm scores above what
   copying the second token of a random earlier name scores, neither has formed induction:
   "not testable: neither arm above the copying baseline" (as pass@k when both are at 0).
2. Induction, size (Sec. 4.1): "the advantage fades with size". Only when the smaller size
   shows an advantage (its gain verdict "supported"): gain(smaller) - gain(larger), the four
   arms' per-seed means contrasted. Otherwise "not testable: no advantage at the smaller size"
   (a shrinking disadvantage is not a fading advantage).
3. Polynomial (Sec. 4.2): "MTP increases accuracy" in distribution and out of distribution
   (exact match), not testable when neither arm is above chance; "most out of distribution":
   gain(OOD) - gain(ID), only when there is a gain in or out of distribution.
"""

from __future__ import annotations

from itertools import combinations

from harness.report.arm_rows import ArmRow, outcome_matrix, reference_arm, seeds_of
from harness.report.claims import Verdict, describe, excluded, from_estimate, untestable
from harness.report.collect import RunRecord
from harness.report.inference import SUPPORTED, Estimate, Term, contrast, judge

PP = "percentage points"
INDUCTION = "Gloeckle et al. Sec. 4.1: MTP improves induction at <= 30M parameters"
FADES = "Gloeckle et al. Sec. 4.1: the MTP advantage on induction fades with model size"
POLY = {
    "polynomial/exact_match_id": "Gloeckle et al. Sec. 4.2: MTP increases polynomial accuracy in distribution",
    "polynomial/exact_match_ood": "Gloeckle et al. Sec. 4.2: MTP increases polynomial accuracy out of distribution",
}
MOST_OOD = "Gloeckle et al. Sec. 4.2: MTP's gain is largest out of distribution"


def non_embedding(runs: list[RunRecord]) -> int:
    """Non-embedding parameters of an arm (trunk and heads, as the paper counts model size)."""
    params = runs[0].plan.get("params", {})
    return int(params.get("trunk", 0)) + int(params.get("heads", 0))


def _judged(groups: dict[str, list[RunRecord]]) -> list[tuple[str, str]]:
    """(multi-token arm, its reference arm) pairs the probe claims are about."""
    out = []
    for arm, runs in groups.items():
        ref = reference_arm(groups, arm)
        cfg = runs[0].objective_cfg
        if ref is None or runs[0].control_of or cfg is None or cfg.n_predict < 2:
            continue
        out.append((arm, ref))
    return out


def _mean(group: list[RunRecord], key: str) -> float | None:
    values = [r.summary[key] for r in group if r.summary.get(key) is not None]
    return 100 * sum(values) / len(values) if values else None


def _floors(base: list[RunRecord], metric: str) -> list[tuple[str, float]]:
    """The task's floors in percent: what copying an earlier name scores (induction), chance."""
    probe = metric.split("/")[0]
    found = [("copying an earlier name", _mean(base, "induction/copy_baseline")), ("chance", _mean(base, f"{probe}/chance"))]
    return [(name, value) for name, value in found if value is not None]


def _levels(base: list[RunRecord], runs: list[RunRecord], metric: str) -> str:
    """The two arms' scores beside the task's floors, so a gain between two arms that both sit
    at a floor is read as such."""
    parts = [f"STP {_mean(base, metric):.1f}%", f"arm {_mean(runs, metric):.1f}%"]
    parts += [f"{name} {value:.1f}%" for name, value in _floors(base, metric)]
    return f"; {metric}: " + ", ".join(parts)


def _below_floor(base: list[RunRecord], runs: list[RunRecord], metric: str) -> str:
    """Why neither arm is above the task's first floor (copying for induction, else chance), or ''."""
    floors = _floors(base, metric)
    if not floors:
        return ""
    name, floor = floors[0]
    scores = _mean(base, metric), _mean(runs, metric)
    if any(s is None or s > floor for s in scores):
        return ""
    return f"neither arm above the {name} baseline (STP {scores[0]:.1f}%, arm {scores[1]:.1f}%, {name} {floor:.1f}%)"


def _gain_verdict(claim, groups, row: ArmRow, ref, metric, units) -> Verdict | None:
    """The table's gain of `row` on `metric` (arm_rows.gains_over, not computed again) as a
    verdict on `claim`."""
    base, runs = groups[ref], groups[row.arm]
    label = f"{row.arm} vs {ref} ({non_embedding(base):,} non-embedding params)"
    stat = f"gain in {metric} (arm - STP) over {units}"
    gain = row.gains.get(metric)
    if gain is None:  # runs without this probe (a code corpus) get no row about it
        return None
    why = excluded(base, runs)
    if why:
        return untestable(claim, label, stat, PP, why + "; gain not interpretable")
    if gain.get("note", "").startswith("neither"):
        return untestable(claim, label, stat, PP, "neither arm scores once")
    floor = _below_floor(base, runs, metric)
    if floor:
        return untestable(claim, label, stat, PP, floor)
    est = Estimate.from_dict(gain)
    verdict = judge(est, "positive")
    text = f"{verdict}: gain {describe(est, PP, units)}{_levels(base, runs, metric)}"
    return from_estimate(claim, label, stat, est, PP, verdict, text)


def _contrast(parts: list[tuple[float, list[RunRecord], list[RunRecord], str, str]], n_resamples: int) -> Estimate | None:
    """sum of weight x (arm - base) on a metric, each part (weight, base, arm, metric, units key)."""
    terms = []
    for weight, base, runs, metric, units in parts:
        pair = outcome_matrix(base, runs, metric)
        if pair is None:
            return None
        terms += [Term(weight, pair[1], seeds_of(runs), units), Term(-weight, pair[0], seeds_of(base), units)]
    try:
        return contrast(terms, n_resamples=n_resamples).scaled(100.0)
    except ValueError:  # the parts score different units where they should share them
        return None


def _fades(groups, judged, gains: dict[str, Verdict], n_resamples) -> list[Verdict]:
    """gain(smaller) - gain(larger) for arms of one objective against STP arms of two sizes."""
    out = []
    metric = "induction/accuracy"
    for (a, ra), (b, rb) in combinations(judged, 2):
        if ra == rb or groups[a][0].objective_cfg.label() != groups[b][0].objective_cfg.label():
            continue
        if non_embedding(groups[ra]) > non_embedding(groups[rb]):
            (a, ra), (b, rb) = (b, rb), (a, ra)
        label = f"{a} (vs {ra}) minus {b} (vs {rb})"
        stat = "gain(smaller model) - gain(larger model) in induction accuracy"
        why = excluded(*(groups[x] for x in (a, ra, b, rb)))
        small = gains.get(a)
        if why:
            out.append(untestable(FADES, label, stat, PP, why))
            continue
        if small is None:
            continue
        if small.verdict != SUPPORTED:
            shown = "" if small.estimate is None else f" (its gain {small.estimate:+.2f} pp: {small.verdict})"
            out.append(untestable(FADES, label, stat, PP, f"no advantage at the smaller size{shown}; a shrinking "
                                  "disadvantage or a difference of two null gains is not a fading advantage"))
            continue
        est = _contrast([(1.0, groups[ra], groups[a], metric, "stories"), (-1.0, groups[rb], groups[b], metric, "stories")],
                        n_resamples)
        if est is None:
            continue
        verdict = judge(est, "positive")
        out.append(from_estimate(FADES, label, stat, est, PP, verdict,
                                 f"{verdict}: difference of gains {describe(est, PP, 'stories')}"))
    return out


def _most_ood(groups, arm, ref, gains: dict[str, Verdict], n_resamples) -> Verdict | None:
    base, runs = groups[ref], groups[arm]
    ood, ind = outcome_matrix(base, runs, "polynomial/exact_match_ood"), outcome_matrix(base, runs, "polynomial/exact_match_id")
    if ood is None or ind is None or excluded(base, runs):
        return None
    label = f"{arm} vs {ref}"
    stat = "gain(OOD) - gain(ID) in exact match, expressions resampled within each set"
    if not (ood[0].any() or ood[1].any()):
        return untestable(MOST_OOD, label, stat, PP, "neither arm answers an out-of-distribution expression exactly")
    if not any(v is not None and v.verdict == SUPPORTED for v in gains.values()):
        return untestable(MOST_OOD, label, stat, PP, "no gain in or out of distribution, so none to be largest")
    est = _contrast([(1.0, base, runs, "polynomial/exact_match_ood", "ood"),
                     (-1.0, base, runs, "polynomial/exact_match_id", "id")], n_resamples)
    if est is None:
        return None
    verdict = judge(est, "positive")
    return from_estimate(MOST_OOD, label, stat, est, PP, verdict,
                         f"{verdict}: difference of gains {describe(est, PP, 'OOD expressions')}")


def probe_verdicts(groups: dict[str, list[RunRecord]], rows: list[ArmRow], n_resamples: int = 10_000) -> list[Verdict]:
    """`rows`: `arm_rows.build_rows(groups)`, whose gains the single-gain verdicts read."""
    judged = _judged(groups)
    by_arm = {row.arm: row for row in rows}
    induction = {arm: _gain_verdict(INDUCTION, groups, by_arm[arm], ref, "induction/accuracy", "stories")
                 for arm, ref in judged}
    out: list[Verdict | None] = list(induction.values())
    out += _fades(groups, [(a, r) for a, r in judged if groups[a][0].outcomes("induction/accuracy") is not None],
                  induction, n_resamples)
    for arm, ref in judged:
        poly = {metric: _gain_verdict(claim, groups, by_arm[arm], ref, metric, "expressions")
                for metric, claim in POLY.items()}
        out += list(poly.values())
        out.append(_most_ood(groups, arm, ref, poly, n_resamples))
    return [v for v in out if v is not None]
