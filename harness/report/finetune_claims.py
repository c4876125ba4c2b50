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
3. Self-distilled vs corpus targets (FastMTP 2025: a head fine-tuned on the model's own
   generations drafts what the model will say). For each post-hoc arm trained on the
   checkpoint's greedy continuations (`data.self_distill`) and the post-hoc arm of the same
   objective, freeze and checkpoint trained on the corpus: tokens per step of self-speculative
   decoding per prompt (decoding follows the model's own prefix, which is what distillation
   trains for) and, beside it, teacher-forced acceptance per held-out corpus row. The claim
   predicts more for the distilled arm on both.
4. A check, not a claim: an arm trained with `train.freeze: trunk_and_unembedding` must score
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
DISTILLED = "FastMTP 2025: a post-hoc head trained on the model's own greedy text drafts more than one trained on the corpus"
FINETUNE_CLAIMS = (CONTINUED, POSTHOC, DISTILLED, FROZEN)
ACCEPTANCE_UNIT = "percentage points"


def _mtp(record: RunRecord) -> bool:
    cfg = record.objective_cfg
    return cfg is not None and cfg.n_predict > 1


def _same_objective(a: RunRecord, b: RunRecord) -> bool:
    """The same objective (kind and depths) started from the same checkpoint."""
    return a.kind == b.kind and a.init_from == b.init_from and a.objective_cfg.n_predict == b.objective_cfg.n_predict


def _depths(record: RunRecord) -> list[str]:
    """The extra depths an MTP run drafts with, as acceptance.json names them."""
    return [str(k) for k in range(2, record.objective_cfg.n_predict + 1)]


def _eligible(groups: dict[str, list[RunRecord]]) -> list[str]:
    """Arms from a checkpoint that are not negative controls."""
    return [arm for arm, runs in groups.items() if runs[0].init_from and runs[0].control_of is None]


def finetune_verdicts(groups: dict[str, list[RunRecord]], rows, n_resamples: int = 10_000) -> list[Verdict]:
    arms = _eligible(groups)
    if not arms:
        return []
    return [*_continued(groups, rows, arms), *_posthoc(groups, arms, n_resamples), *_distilled(groups, arms, n_resamples),
            *_frozen_checks(groups, rows, arms)]


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
            est = Estimate.from_dict(gain)
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
        if not _mtp(p) or p.freeze == "none" or p.self_distilled:  # Mehra et al. train on the corpus
            continue
        for joint in arms:
            j = groups[joint][0]
            if joint == post or j.freeze != "none" or not _same_objective(j, p):
                continue
            out += _acceptance_rows(groups, post, joint, n_resamples)
    return out


def _acceptance_rows(groups, post: str, joint: str, n_resamples: int) -> list[Verdict]:
    return [_difference(POSTHOC, groups, post, joint, f"acceptance(post hoc) - acceptance(joint) on depth {d} "
                        "agree_greedy", lambda r, d=d: r.acceptance_rows(d), "held-out rows", 100.0,
                        ACCEPTANCE_UNIT, "negative", n_resamples) for d in _depths(groups[post][0])]


def _distilled(groups, arms: list[str], n_resamples: int) -> list[Verdict]:
    out = []
    for mine in arms:
        m = groups[mine][0]
        if not (_mtp(m) and m.freeze != "none" and m.self_distilled):
            continue
        for corpus in arms:
            c = groups[corpus][0]
            if c.self_distilled or c.freeze != m.freeze or not _same_objective(c, m):
                continue
            out.append(_difference(DISTILLED, groups, mine, corpus, "distilled - corpus on tokens per step",
                                   lambda r: r.prompt_tokens_per_step(), "decoding prompts", 1.0,
                                   "tokens per step (higher is better)", "positive", n_resamples))
            out += [_difference(DISTILLED, groups, mine, corpus, f"distilled - corpus on depth {d} agree_greedy",
                                lambda r, d=d: r.acceptance_rows(d), "held-out rows", 100.0, ACCEPTANCE_UNIT,
                                "positive", n_resamples)
                    for d in _depths(m)]
    return out


def _difference(claim: str, groups, first: str, second: str, stat: str, per_unit, units: str, scale: float,
                unit: str, predicts: str, n_resamples: int) -> Verdict:
    """first - second on a per-unit outcome of every run (`per_unit(run)`: one value per unit,
    the same units in every run), across seeds with its data-sampling interval."""
    label = f"{first} vs {second}"
    why = excluded(groups[first], groups[second])
    if why:
        return untestable(claim, label, stat, unit, why + "; not interpretable")
    found = [[per_unit(r) for r in groups[a]] for a in (first, second)]
    flat = found[0] + found[1]
    if any(x is None for x in flat) or len({len(x) for x in flat}) != 1:
        return untestable(claim, label, stat, unit, f"no per-unit counts on common {units} (eval/acceptance.json; "
                          "`harness study ... --force evaluate` rescores)")
    terms = [Term(1.0, np.stack(found[0]), seeds_of(groups[first]), units),
             Term(-1.0, np.stack(found[1]), seeds_of(groups[second]), units)]
    est = contrast(terms, n_resamples=n_resamples).scaled(scale)
    verdict = judge(est, claim_predicts=predicts)
    text = (f"{verdict}: difference {describe(est, unit, units)}" if est.testable
            else f"{UNTESTABLE}: {est.untestable}; difference {describe(est, unit)}")
    if verdict == UNCLEAR:
        text += "; consistent with no difference"
    return from_estimate(claim, label, stat, est, unit, verdict, text)


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
