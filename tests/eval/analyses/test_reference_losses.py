"""Count-based references against a brute-force oracle written with plain dicts."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from harness.eval.analyses.reference_losses import CountModels

V = 7


def oracle(stream: list[int], rows: list[list[int]], gap: int) -> float:
    """Mean -log p of every row's targets, Witten-Bell as the module documents it."""
    uni = Counter(stream)
    p_uni = {t: (uni[t] + 0.5) / (len(stream) + 0.5 * V) for t in range(V)}
    pairs = Counter(zip(stream[:-gap], stream[gap:])) if gap else Counter()
    total, distinct = Counter(), Counter()
    for (a, _), c in pairs.items():
        total[a] += c
        distinct[a] += 1
    logs = []
    for row in rows:
        for i in range(1, len(row)):
            t = row[i]
            if gap == 0 or i - gap < 0 or total[row[i - gap]] == 0:
                p = p_uni[t]
            else:
                a = row[i - gap]
                p = (pairs[(a, t)] + distinct[a] * p_uni[t]) / (total[a] + distinct[a])
            logs.append(-math.log(p))
    return sum(logs) / len(logs)


def test_every_reference_matches_the_oracle():
    rng = np.random.default_rng(0)
    stream = rng.integers(0, V - 1, 500)  # token V-1 never occurs: a context never seen
    rows = np.array([[V - 1, 1, 2, 3, 4, 5], [0, 0, 0, V - 1, 2, 1]])
    models = CountModels(stream, V)
    for name, gap in (("unigram", 0), ("bigram", 1), ("skip_bigram", 2)):
        got = float(-models.log_probs(rows, name).mean())
        assert abs(got - oracle(stream.tolist(), rows.tolist(), gap)) < 1e-12, name


def test_a_deterministic_stream_gives_a_low_bigram_loss_and_a_high_unigram_loss():
    stream = np.tile(np.arange(V), 200)  # t+1 follows t: a bigram table predicts it exactly
    rows = np.tile(np.arange(V), 3)[None, :]
    models = CountModels(stream, V)
    bigram = float(-models.log_probs(rows, "bigram")[:, 1:].mean())
    assert bigram < 0.01 and abs(float(-models.log_probs(rows, "unigram").mean()) - math.log(V)) < 0.01
