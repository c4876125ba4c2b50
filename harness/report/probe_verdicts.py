"""Verdicts on Meta's small-model probe claims (Gloeckle et al. 2024, Sec. 4; docs/FACTS.md).

Each multi-token arm (an objective predicting more than one token, not a negative control,
not collapsed) is judged against its reference arm (`arm_rows.reference_arm`: the STP arm of
the same model size) on the probe metrics both have:

1. Induction (Sec. 4.1): "MTP improves induction at <= 30M parameters". Statistic: the gain
   in induction accuracy (arm - STP, percentage points), paired by test story, percentile
   bootstrap over stories, two-level over seeds. Every model here is far below 30M, so the
   claim applies to each size: "supported" if the interval is above zero, "contradicted" if
   below, else "not distinguishable".
2. Induction, size (Sec. 4.1): "the advantage fades with size". For two arms with the same
   objective measured against STP arms of different sizes: gain(smaller) - gain(larger),
   paired by story (one test set), both sizes' seeds resampled. Supported if above zero.
3. Polynomial (Sec. 4.2): "MTP increases accuracy" in distribution and out of distribution
   (exact match, percentage points, bootstrap over expressions), and "most out of
   distribution": gain(OOD) - gain(ID), the two sets of expressions resampled independently.

A metric that neither arm scores once is "not testable" (no interval can measure anything).
"""

from __future__ import annotations

from itertools import combinations

from harness.report.arm_rows import ArmRow, outcome_matrix, reference_arm
from harness.report.collect import RunRecord
from harness.report.stats import Gain, difference_of_gains
from harness.report.verdicts import CONTRADICTED, SUPPORTED, UNCLEAR, UNTESTABLE, Verdict, _collapsed

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


def _pp(g: Gain) -> dict:
    """A Gain (fractions) in the form of the table's gains (`arm_rows._gain_dict`: percentage points)."""
    return {"mean": 100 * g.mean, "low": 100 * g.low, "high": 100 * g.high, "n": g.n_problems,
            "n_seeds": list(g.n_seeds)}


def _judge(claim: str, arms: str, stat: str, g: dict, what: str, units: str, extra: str = "") -> Verdict:
    """The verdict row of a gain `g` in percentage points (mean, low, high, n, n_seeds)."""
    verdict = SUPPORTED if g["low"] > 0 else CONTRADICTED if g["high"] < 0 else UNCLEAR
    text = (f"{verdict}: {what} {g['mean']:+.2f} pp (95% CI [{g['low']:+.2f}, {g['high']:+.2f}]) over "
            f"{g['n']} {units}, {g['n_seeds'][0]}+{g['n_seeds'][1]} seeds{extra}")
    return Verdict(claim, arms, stat, g["mean"], g["low"], g["high"], PP, verdict, text)


def _gain_verdict(claim, groups, row: ArmRow, ref, metric, units) -> Verdict | None:
    """The table's gain of `row` on `metric` (arm_rows.gains_over: the same paired bootstrap,
    not computed again) as a verdict on `claim`."""
    base, runs = groups[ref], groups[row.arm]
    label = f"{row.arm} vs {ref} ({non_embedding(base):,} non-embedding params)"
    stat = f"gain in {metric} (arm - STP), bootstrap over {units}"
    collapsed = _collapsed(base) + _collapsed(runs)
    if collapsed:
        return Verdict(claim, label, stat, None, None, None, PP, UNTESTABLE,
                       f"{UNTESTABLE}: collapsed ({'; '.join(collapsed)}); gain not interpretable")
    gain = row.gains.get(metric)
    if gain is None:
        return None
    if gain.get("note"):  # neither arm scores once: a zero-width interval measures nothing
        return Verdict(claim, label, stat, 0.0, 0.0, 0.0, PP, UNTESTABLE, f"{UNTESTABLE}: neither arm scores once")
    return _judge(claim, label, stat, gain, "gain", units, _levels(base, runs, metric))


def _levels(base: list[RunRecord], runs: list[RunRecord], metric: str) -> str:
    """The two arms' scores beside the task's floors, so a gain between two arms that both sit
    at a floor is read as such: chance, and for induction what copying the second token of a
    random earlier name scores (no induction needed)."""
    def mean(group, key):
        values = [r.summary[key] for r in group if r.summary.get(key) is not None]
        return 100 * sum(values) / len(values) if values else None

    probe = metric.split("/")[0]
    floors = [("copying an earlier name", mean(base, "induction/copy_baseline")), ("chance", mean(base, f"{probe}/chance"))]
    parts = [f"STP {mean(base, metric):.1f}%", f"arm {mean(runs, metric):.1f}%"]
    parts += [f"{name} {value:.1f}%" for name, value in floors if value is not None]
    return f"; {metric}: " + ", ".join(parts)


def _fades(groups, judged, n_resamples) -> list[Verdict]:
    """gain(smaller) - gain(larger) for arms of one objective against STP arms of two sizes."""
    out = []
    metric = "induction/accuracy"
    for (a, ra), (b, rb) in combinations(judged, 2):
        if ra == rb or groups[a][0].objective_cfg.label() != groups[b][0].objective_cfg.label():
            continue
        if non_embedding(groups[ra]) > non_embedding(groups[rb]):
            (a, ra), (b, rb) = (b, rb), (a, ra)
        label = f"{a} (vs {ra}) minus {b} (vs {rb})"
        stat = "gain(smaller model) - gain(larger model) in induction accuracy, bootstrap over stories"
        collapsed = [c for arm in (a, ra, b, rb) for c in _collapsed(groups[arm])]
        if collapsed:
            out.append(Verdict(FADES, label, stat, None, None, None, PP, UNTESTABLE,
                               f"{UNTESTABLE}: collapsed ({'; '.join(collapsed)})"))
            continue
        small, large = outcome_matrix(groups[ra], groups[a], metric), outcome_matrix(groups[rb], groups[b], metric)
        if small is None or large is None or small[0].shape[1] != large[0].shape[1]:
            continue
        g = difference_of_gains(small, large, same_problems=True, n_resamples=n_resamples)
        out.append(_judge(FADES, label, stat, _pp(g), "difference of gains", "stories"))
    return out


def _most_ood(groups, arm, ref, n_resamples) -> Verdict | None:
    base, runs = groups[ref], groups[arm]
    ood = outcome_matrix(base, runs, "polynomial/exact_match_ood")
    ind = outcome_matrix(base, runs, "polynomial/exact_match_id")
    if ood is None or ind is None or _collapsed(base) + _collapsed(runs):
        return None
    label = f"{arm} vs {ref}"
    stat = "gain(OOD) - gain(ID) in exact match, expressions resampled within each set"
    if not (ood[0].any() or ood[1].any()):
        return Verdict(MOST_OOD, label, stat, None, None, None, PP, UNTESTABLE,
                       f"{UNTESTABLE}: neither arm answers an out-of-distribution expression exactly")
    g = difference_of_gains(ood, ind, same_problems=False, n_resamples=n_resamples)
    return _judge(MOST_OOD, label, stat, _pp(g), "difference of gains", "OOD expressions")


def probe_verdicts(groups: dict[str, list[RunRecord]], rows: list[ArmRow], n_resamples: int = 10_000) -> list[Verdict]:
    """`rows`: `arm_rows.build_rows(groups)`, whose gains the single-gain verdicts read."""
    judged = _judged(groups)
    by_arm = {row.arm: row for row in rows}
    out: list[Verdict | None] = []
    for arm, ref in judged:
        out.append(_gain_verdict(INDUCTION, groups, by_arm[arm], ref, "induction/accuracy", "stories"))
    out += _fades(groups, [(a, r) for a, r in judged if groups[a][0].outcomes("induction/accuracy") is not None],
                  n_resamples)
    for arm, ref in judged:
        for metric, claim in POLY.items():
            out.append(_gain_verdict(claim, groups, by_arm[arm], ref, metric, "expressions"))
        out.append(_most_ood(groups, arm, ref, n_resamples))
    return [v for v in out if v is not None]
