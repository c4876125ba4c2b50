"""Count-based reference losses: what a model must beat before it has learnt anything beyond
token statistics.

A trained model that is no better than a bigram table has not used its context; one that
sits at the unigram entropy has collapsed (every position predicts the marginal). So every
evaluation scores, on the same held-out rows as the model, three models fitted by counting
the training split:

  unigram       P(t)                      add-1/2 smoothing
  bigram        P(t | t-1)                interpolated Witten-Bell with the unigram
  skip-bigram   P(t | t-2)                interpolated Witten-Bell with the unigram

Witten-Bell has no tuned constant (the back-off weight of a context is the number of distinct
tokens seen after it), so the references cannot be tuned on the held-out rows. Positions
without the needed history (the first one or two of a row) fall back to the unigram. All in
nats per predicted token.

Written by hand because the smoothing is ten lines of numpy: NLTK's and KenLM's n-gram
models expect word strings and would need every shard turned into text.
"""

from __future__ import annotations

import numpy as np

ORDERS = {"unigram": 0, "bigram": 1, "skip_bigram": 2}


def _train_tokens(prepared) -> np.ndarray:
    parts = [np.memmap(path, dtype=prepared.dtype, mode="r", shape=(n,)) for path, n in prepared.shards("train")]
    return np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])


class CountModels:
    """Unigram, bigram and skip-bigram counts of a token stream over a vocabulary of V."""

    def __init__(self, tokens: np.ndarray, vocab_size: int):
        self.V = int(vocab_size)
        counts = np.bincount(tokens, minlength=self.V).astype(np.float64)
        self.unigram = (counts + 0.5) / (counts.sum() + 0.5 * self.V)
        self.pairs = {gap: self._pair_counts(tokens, gap) for gap in (1, 2)}

    def _pair_counts(self, tokens: np.ndarray, gap: int):
        """Sorted pair keys (a * V + b), their counts, and per context a: total and distinct."""
        keys, counts = np.unique(tokens[:-gap] * self.V + tokens[gap:], return_counts=True)
        context = keys // self.V
        total = np.bincount(context, weights=counts, minlength=self.V)
        distinct = np.bincount(context, minlength=self.V).astype(np.float64)
        return keys, counts.astype(np.float64), total, distinct

    def log_probs(self, rows: np.ndarray, name: str) -> np.ndarray:
        """[rows, S] natural-log probabilities of targets rows[:, 1:] under one model."""
        targets = rows[:, 1:]
        uni = self.unigram[targets]
        gap = ORDERS[name]
        if gap == 0:
            return np.log(uni)
        keys, counts, total, distinct = self.pairs[gap]
        # The context of target i (= token i+1 of the row) is token i+1-gap; none before the row.
        context = np.full_like(targets, -1)
        context[:, gap - 1:] = rows[:, : rows.shape[1] - gap]
        has = context >= 0
        ctx = np.where(has, context, 0)
        query = ctx * self.V + targets
        at = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
        c = np.where(keys[at] == query, counts[at], 0.0)
        n, t = total[ctx], distinct[ctx]
        with np.errstate(invalid="ignore", divide="ignore"):
            wb = np.where(n > 0, (c + t * uni) / (n + t), uni)
        return np.log(np.where(has, wb, uni))


def reference_losses(prepared, rows: np.ndarray) -> dict[str, float]:
    """Mean cross-entropy (nats/token) of each count model on `rows` [n, S+1], the rows the
    model itself is scored on (targets rows[:, 1:])."""
    models = CountModels(_train_tokens(prepared), prepared.vocab_size)
    rows = np.asarray(rows, dtype=np.int64)
    return {name: float(-models.log_probs(rows, name).mean()) for name in ORDERS}
