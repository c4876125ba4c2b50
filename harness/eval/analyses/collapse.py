"""Collapse detection: a run that learnt nothing beyond token frequencies is flagged, so its
"gain" is never reported as an effect of its objective.

The failure this catches (objectives/meta.md): at a learning rate too high for an objective,
training falls into a state where every block writes a near-constant vector into the
residual stream and every head predicts the unigram distribution. Its signs, either of which
flags a run:
  - every depth has the same validation loss (within EQUAL_DEPTHS nats), though depth k
    predicts a token k-1 steps further away and must be worse when anything is learnt
    (objectives whose depth k reads more context than depth 1, DeepSeek's chained modules,
    say `deeper_depths_are_harder = False` and skip this sign);
  - the next-token loss is within UNIGRAM_MARGIN nats of the count-based unigram loss of
    the same rows (`reference_losses`), i.e. the model ignores its context.
"""

from __future__ import annotations

EQUAL_DEPTHS = 0.02  # nats: a healthy depth 2 is ~1 nat worse than depth 1 even at 2M parameters
UNIGRAM_MARGIN = 0.2  # nats (the review's threshold; a bigram table is ~2 nats below the unigram here)


def collapse_reasons(val: dict[str, float], next_token_loss: float | None, unigram: float | None, *,
                     deeper_depths_are_harder: bool = True) -> list[str]:
    """Why a run counts as collapsed (empty: it does not). `val`: the run's final validation
    losses by depth (`val/depth_1`, ...); `next_token_loss` and `unigram` on the same rows;
    `deeper_depths_are_harder`: the objective's (`ObjectiveConfig`), which enables the
    equal-depths sign."""
    reasons = []
    depths = {k: v for k, v in val.items() if k.startswith("val/depth_") and v is not None}
    if deeper_depths_are_harder and len(depths) >= 2 and max(depths.values()) - min(depths.values()) < EQUAL_DEPTHS:
        shown = ", ".join(f"{k.removeprefix('val/')} {v:.3f}" for k, v in sorted(depths.items()))
        reasons.append(f"every depth has the same validation loss ({shown})")
    if next_token_loss is not None and unigram is not None and next_token_loss > unigram - UNIGRAM_MARGIN:
        reasons.append(f"next-token loss {next_token_loss:.3f} is within {UNIGRAM_MARGIN} nats of the "
                       f"unigram loss {unigram:.3f} of the same rows")
    return reasons
