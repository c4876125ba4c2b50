"""Runs stuck on a plateau: flagged beside "collapsed", and like a collapsed run they join no
verdict (what two stuck arms differ by is which one is stuck worse, not an MTP effect).

A study declares the rule (`plateau:` in the study file, `study.Plateau`):
- flat_sweep: every healthy sweep point of an arm lies within this many nats of the others:
  its loss does not depend on the learning rate across the grid, the mark of a plateau
  (tiny Meta on the induction probe sat at 1.3214-1.3226 at two rates three times apart);
- bigram_margin: a run's held-out loss is above the count-based bigram model's minus this
  margin: it has learnt nothing a bigram table does not know. Off unless declared, since
  an undertrained but still-learning model can sit there too.
"""

from __future__ import annotations

import numpy as np


def flat_sweep_reasons(sweep, margin: float | None) -> dict[str, str]:
    """Swept arm -> why it is stuck, for arms whose healthy sweep points all lie within `margin`."""
    if sweep is None or margin is None:
        return {}
    out = {}
    for arm in sweep.chosen:
        losses = sorted((p.lr, p.val_loss) for p in sweep.points if p.arm == arm and p.val_loss is not None
                        and not p.collapsed)
        if len(losses) < 2:
            continue
        values = [v for _, v in losses]
        if max(values) - min(values) < margin:
            out[arm] = (f"flat across the sweep's rates (validation loss {min(values):.4f}-{max(values):.4f} over lr "
                        f"{losses[0][0]:g}-{losses[-1][0]:g}, within {margin:g} nats)")
    return out


def bigram_reason(record, margin: float | None) -> str:
    """Why a run has not got clear of the bigram model's held-out loss, or ''."""
    bigram = record.references.get("bigram")
    if margin is None or bigram is None or record.positions is None:
        return ""
    loss = float(np.mean(record.positions.rows[:, 2]))
    if loss <= bigram - margin:
        return ""
    return f"held-out loss {loss:.4f} is not {margin:g} nats below the bigram model's {bigram:.4f}"


def flag_stuck(groups: dict[str, list], study, sweep) -> None:
    """Set each record's `stuck` reasons under the study's plateau rule (no study: none)."""
    if study is None:
        return
    rule = study.config.plateau
    flat = flat_sweep_reasons(sweep, rule.flat_sweep)
    for arm, runs in groups.items():
        lr_arm = study.lr_arm(arm) if arm in study.config.arms else arm
        for record in runs:
            reasons = [flat[lr_arm]] if lr_arm in flat else []
            reasons += [r for r in [bigram_reason(record, rule.bigram_margin)] if r]
            record.stuck = reasons
