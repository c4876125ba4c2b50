"""Verdicts for arms that start from one pretrained checkpoint (`model.init_from`, issue 26).

The blog's claims are about pretraining; a study that continues a checkpoint asks other
questions, and these rows answer them with the same rule (`report/inference.py`: the interval
across seeds decides, the data-sampling one stands beside it, both must exclude zero):

1. Continued MTP vs continued STP. For every arm that trains the whole checkpoint with MTP
   heads (`train.freeze: none`) against an STP arm continued from the same checkpoint on the
   same tokens (its `baseline:`): does the next-token model come out better (val loss and
   canonical-solution NLL lower, pass@k higher)? The rows restate the gains table's gains as
   verdicts; the claim predicts improvement.
2. Post hoc vs joint (Mehra et al. 2025, arXiv 2502.09419: heads added to a frozen next-token
   model adapt poorly; joint training helps). For each post-hoc arm (frozen trunk) and the
   continued arm of the same objective from the same checkpoint: acceptance(post hoc) -
   acceptance(joint) per depth, in percentage points, the units being the held-out rows
   (per-row counts in eval/acceptance.json), paired by seed. The claim predicts < 0. Each arm's
   acceptance is against its own next-token model (what self-speculative decoding keeps), so a
   joint arm that changed its next-token model is scored against the changed one.
3. A check, not a claim: an arm trained with `train.freeze: trunk_and_unembedding` must score
   every unit exactly as its baseline does when that baseline is the untouched checkpoint
   (frozen the same way, same `init_from`): its next-token model is the checkpoint's, bit for
   bit. Outside the Holm family, like the negative controls.
"""

from __future__ import annotations

import numpy as np

from harness.report.arm_rows import metric_pair, reference_arm, seeds_of
from harness.report.claims import Verdict, describe, excluded, from_estimate, untestable
from harness.report.collect import RunRecord
from harness.report.inference import UNCLEAR, UNTESTABLE, Estimate, Term, contrast, judge

CONTINUED = "continued training with MTP improves the checkpoint's next-token model over STP on the same tokens"
POSTHOC = "Mehra et al. 2025: heads trained post hoc on a frozen trunk accept fewer drafts than jointly trained ones"
FROZEN = "check: a frozen next-token model scores every unit exactly as the untouched checkpoint"
FINETUNE_CLAIMS = (CONTINUED, POSTHOC, FROZEN)
ACCEPTANCE_UNIT = "percentage points"


def _mtp(record: RunRecord) -> bool:
    cfg = record.objective_cfg
    return cfg is not None and cfg.n_predict > 1


def _eligible(groups: dict[str, list[RunRecord]]) -> list[str]:
    """Arms from a checkpoint that are not negative controls."""
    return [arm for arm, runs in groups.items() if runs[0].init_from and runs[0].control_of is None]


def finetune_verdicts(groups: dict[str, list[RunRecord]], rows, n_resamples: int = 10_000) -> list[Verdict]:
    arms = _eligible(groups)
    if not arms:
        return []
    return [*_continued(groups, rows, arms), *_posthoc(groups, arms, n_resamples), *_frozen_checks(groups, rows, arms)]


def _continued(groups, rows, arms: list[str]) -> list[Verdict]:
    out = []
    by_arm = {row.arm: row for row in rows}
    for arm in arms:
        runs, ref = groups[arm], reference_arm(groups, arm)
        if not _mtp(runs[0]) or runs[0].freeze != "none" or ref is None:
            continue
        base = groups[ref][0]
        if _mtp(base) or base.freeze != "none" or base.init_from != runs[0].init_from:
            continue  # the gain is not over STP continued from the same checkpoint
        label = f"{arm} vs {ref}"
        why = excluded(groups[ref], runs)
        if why:
            out.append(untestable(CONTINUED, label, f"{arm} - {ref}", "", why + "; gain not interpretable"))
            continue
        for metric, gain in sorted(by_arm[arm].gains.items(), key=lambda m: (m[0] != "val_loss", m[0])):
            stat = f"{arm} - {ref} on {metric}"
            if gain.get("note") and not gain.get("untestable"):  # a pass@k nobody solves measures nothing
                out.append(untestable(CONTINUED, label, stat, gain["unit"], gain["note"]))
                continue
            est = Estimate(**{k: gain[k] for k in Estimate.__dataclass_fields__ if k != "n_seeds"},
                           n_seeds=tuple(gain["n_seeds"]))
            lower_is_better = "lower is better" in gain["unit"]
            verdict = judge(est, claim_predicts="negative" if lower_is_better else "positive")
            text = (f"{verdict}: {metric} gain {describe(est, gain['unit'])}" if est.testable
                    else f"{UNTESTABLE}: {est.untestable}")
            out.append(from_estimate(CONTINUED, label, stat, est, gain["unit"], verdict, text))
    return out


def _posthoc(groups, arms: list[str], n_resamples: int) -> list[Verdict]:
    out = []
    for post in arms:
        p = groups[post][0]
        if not _mtp(p) or p.freeze == "none":
            continue
        for joint in arms:
            j = groups[joint][0]
            if (joint == post or j.freeze != "none" or j.kind != p.kind or j.init_from != p.init_from
                    or j.objective_cfg.n_predict != p.objective_cfg.n_predict):
                continue
            out += _acceptance_rows(groups, post, joint, n_resamples)
    return out


def _acceptance_rows(groups, post: str, joint: str, n_resamples: int) -> list[Verdict]:
    label = f"{post} vs {joint}"
    depths = [str(k) for k in range(2, groups[post][0].objective_cfg.n_predict + 1)]
    why = excluded(groups[post], groups[joint])
    out = []
    for depth in depths:
        stat = f"acceptance(post hoc) - acceptance(joint) on depth {depth} agree_greedy"
        if why:
            out.append(untestable(POSTHOC, label, stat, ACCEPTANCE_UNIT, why + "; acceptance not interpretable"))
            continue
        found = [[r.acceptance_rows(depth) for r in groups[a]] for a in (post, joint)]
        flat = found[0] + found[1]
        if any(x is None for x in flat) or len({len(x) for x in flat}) != 1:
            out.append(untestable(POSTHOC, label, stat, ACCEPTANCE_UNIT, "no per-row acceptance on common held-out "
                                  "rows (eval/acceptance.json; `harness study ... --force evaluate` rescores)"))
            continue
        terms = [Term(1.0, np.stack(found[0]), seeds_of(groups[post]), "acceptance rows"),
                 Term(-1.0, np.stack(found[1]), seeds_of(groups[joint]), "acceptance rows")]
        est = contrast(terms, n_resamples=n_resamples).scaled(100.0)
        verdict = judge(est, claim_predicts="negative")
        text = (f"{verdict}: difference {describe(est, ACCEPTANCE_UNIT, 'held-out rows')}" if est.testable
                else f"{UNTESTABLE}: {est.untestable}; difference {describe(est, ACCEPTANCE_UNIT)}")
        if verdict == UNCLEAR:
            text += "; consistent with equal acceptance"
        out.append(from_estimate(POSTHOC, label, stat, est, ACCEPTANCE_UNIT, verdict, text))
    return out


def _frozen_checks(groups, rows, arms: list[str]) -> list[Verdict]:
    out = []
    by_arm = {row.arm: row for row in rows}
    for arm in arms:
        runs, ref = groups[arm], reference_arm(groups, arm)
        if runs[0].freeze != "trunk_and_unembedding" or ref is None:
            continue
        base = groups[ref]
        if _mtp(base[0]) or base[0].freeze != "trunk_and_unembedding" or base[0].init_from != runs[0].init_from:
            continue  # the baseline is not the untouched checkpoint
        for metric in sorted(by_arm[arm].gains):
            pair = metric_pair(base, runs, metric)
            if pair is None or seeds_of(base) != seeds_of(runs):
                continue
            same = bool(np.array_equal(pair[0], pair[1]))
            word = "identical, as it must be" if same else "NOT identical: the frozen next-token model changed"
            units = pair[0].shape[1]
            text = f"{word}: {metric} on {units} units x {len(runs)} seeds compared exactly"
            out.append(Verdict(FROZEN, f"{arm} vs {ref}", f"exact equality on {metric}", None,
                               None, None, "", word, text, family=False))
    return out
