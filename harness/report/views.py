"""The secondary views of a study's comparison: every gain says which matching rule it comes from.

The primary view is the study's `matching.rule` (the laptop studies: `tokens`, equal
training tokens, the papers' rule); its gains are the main table. Secondary views
(`views:` in the study file):
  params  the primary runs again, keeping only arms whose parameter count matches the
          baseline's within the tolerance (Meta's rule); the others are listed with the
          reason (e.g. DeepSeek's module adds parameters);
  flops   every arm but the baseline trained again at the baseline's training FLOPs
          (fewer tokens for arms that cost more per token); gains against the baseline's
          primary runs, which already spend exactly the baseline's FLOPs.
"""

from __future__ import annotations

from harness.report.arm_rows import ArmRow, gains_over, group_by_arm


def _entry(view: str, row_or_runs, gains: dict, note: str = "") -> dict:
    if isinstance(row_or_runs, ArmRow):
        row = row_or_runs
        seeds, tokens, flops, params = row.seeds, row.tokens, row.train_flops, row.params
        arm = row.arm
    else:
        runs = row_or_runs
        plan = runs[0].plan
        arm, seeds = runs[0].arm, [r.seed for r in runs]
        tokens, flops, params = int(plan.get("tokens", 0)), float(plan.get("total_flops", 0.0)), int(plan.get("params_total", 0))
    return {"view": view, "arm": arm, "seeds": seeds, "tokens": tokens, "train_flops": flops, "params": params,
            "gains": gains, "note": note}


def view_rows(study, lrs, groups: dict, rows: list[ArmRow], found, n_resamples: int,
              allow_missing: bool) -> list[dict]:
    """One entry per (secondary view, arm): its budget and its gains over the baseline."""
    from harness.report.study_runs import view_records

    out = []
    baseline = next(iter(groups))
    for view in study.views:
        if view == "params":
            kept = set(study.params_view_arms())
            for row in rows[1:]:
                if row.control_of:
                    continue
                ratio = row.params / rows[0].params if rows[0].params else float("nan")
                note = "" if row.arm in kept else f"not parameter-matched ({ratio:.3f}x the baseline's parameters)"
                out.append(_entry(view, row, row.gains if not note else {}, note))
            continue
        records = view_records(study, found.runs_root, found.committed, view, lrs)
        if not records:
            continue
        for arm, runs in list(group_by_arm(records + groups[baseline], baseline).items())[1:]:
            collapsed = [f"seed {r.seed}: {'; '.join(r.collapse)}" for r in runs if r.collapse]
            note = f"collapsed ({'; '.join(collapsed)}): gain not interpretable" if collapsed else ""
            out.append(_entry(view, runs, gains_over(groups[baseline], runs, n_resamples), note))
    return out
