"""MTP-head acceptance: how often each extra depth's top-1 guess would survive verification.

Teacher-forced, on held-out rows of S + n tokens t_0 .. t_{S+n-1} (n = the objective's
`n_predict`; the loader's fixed validation windows, so every arm reads the same tokens):
  p_k(i) = argmax of depth k's logits at position i, its guess for t_{i+k} (k >= 2; Meta's
           head k, DeepSeek's module k-1, which reads the true t_{i+1} .. t_{i+k-1});
  g(j)   = argmax of the next-token path's logits at position j (reading t_0 .. t_j), its
           guess for t_{j+1}.
For every row and every input position i = 0 .. S-1:
  agree_greedy(k) = mean of [p_k(i) == g(i+k-1)]: depth k agrees with the token greedy
                    decoding would choose for t_{i+k} after the true prefix t_0 .. t_{i+k-1};
                    the acceptance rate of depth k's draft under teacher forcing;
  correct(k)      = mean of [p_k(i) == t_{i+k}]: top-1 accuracy of depth k;
  n               = the number of (row, position) pairs averaged;
  rows            = per held-out row, the count of agreeing and of correct guesses over its
                    S positions: the units a comparison resamples (`report/finetune_claims.py`).
In decoding, drafts follow the model's own greedy prefix rather than the data and a draft
at depth k is kept only when depths 2..k-1 were kept too, so these rates estimate, not
equal, the speculative decoder's acceptance (`harness.eval.analyses.speculative` measures that).
"""

from __future__ import annotations

from typing import Iterable

import torch

from harness.devices import device_of, to_device
from harness.model.mtp_model import MTPModel


@torch.no_grad()
def depth_agreement(model: MTPModel, batches: Iterable[torch.Tensor], S: int) -> dict[str, dict]:
    """{"2": {"agree_greedy", "correct", "n", "rows"}, ...} over row batches of >= S + n tokens."""
    model.eval()
    n = model.objective_cfg.n_predict
    agree, correct, count = [0] * (n + 1), [0] * (n + 1), 0
    per_row: dict[int, dict[str, list[int]]] = {k: {"agree_greedy": [], "correct": []} for k in range(2, n + 1)}
    for rows in batches:
        rows = to_device(rows, device_of(model))
        if rows.shape[1] < S + n:
            raise ValueError(f"acceptance needs rows of S + n = {S + n} tokens, got {rows.shape[1]}")
        T = S + n - 1  # input positions: g(i+k-1) needs j up to S+n-2
        rope = model.trunk.rope(T)
        hidden = model.trunk(rows[:, :T], rope)  # (B, T, d)
        logits = model.depth_logits_at(hidden, rows, rope)  # n x (B, T, V)
        greedy = logits[0].argmax(-1)  # (B, T): g(j)
        for k in range(2, n + 1):
            guess = logits[k - 1][:, :S].argmax(-1)  # (B, S): p_k(i)
            agreed = (guess == greedy[:, k - 1 : k - 1 + S]).sum(dim=1)  # (B,): per row, over S positions
            right = (guess == rows[:, k : k + S]).sum(dim=1)
            agree[k] += int(agreed.sum())
            correct[k] += int(right.sum())
            per_row[k]["agree_greedy"] += agreed.tolist()
            per_row[k]["correct"] += right.tolist()
        count += rows.shape[0] * S
    if count == 0:
        raise ValueError("acceptance needs at least one row")
    return {str(k): {"agree_greedy": agree[k] / count, "correct": correct[k] / count, "n": count,
                     "rows": {"positions": S, **per_row[k]}}
            for k in range(2, n + 1)}  # fmt: skip
