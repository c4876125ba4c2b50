"""The anatomy of a collapsed run: what every block writes into the residual stream, what the
heads predict, how much gradient reaches the embedding. Prints figures for each run given,
side by side, so a collapsed Meta run can be read against a healthy STP run.

    python benchmarks/collapse_anatomy.py runs/meta_n2-... runs/stp-... [--rows 32]

Figures (on the run's held-out document rows, next-token path and every depth):
  residual norm     mean over positions of |h| at the output of each block (and of the trunk)
  constant share    |mean_h|^2 / mean |h|^2: the share of the residual stream's energy in one
                    vector shared by every position (1.0: every position carries the same vector)
  depth loss        cross-entropy of each depth, and its KL to the unigram distribution
  gradient norms    of the embedding, the unembedding and the blocks, on one training batch
The measurements in `harness/model/objectives/meta.md` (collapse mechanism) come from here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def residual_figures(model, rows):
    """Per block of the next-token path: mean |h| and the constant share, after that block."""
    import torch

    captured = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
             for block in model.next_token_layers()]
    with torch.no_grad():
        model.next_token_logits(rows[:, :-1])
    for hook in hooks:
        hook.remove()
    out = []
    for h in captured:
        flat = h.reshape(-1, h.shape[-1]).double()
        energy = flat.pow(2).sum(-1).mean()
        out.append((flat.norm(dim=-1).mean().item(), (flat.mean(0).pow(2).sum() / energy).item()))
    return out


def depth_figures(model, rows, unigram):
    """Per depth: cross-entropy on its targets and KL(depth's mean prediction || unigram)."""
    import torch
    import torch.nn.functional as F

    n = model.objective_cfg.n_predict
    with torch.no_grad():
        logits = model.depth_logits(rows)
    S = rows.shape[1] - n
    out = []
    for k, lg in enumerate(logits, start=1):
        lg = lg[:, :S].float()
        ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), rows[:, k:k + S].reshape(-1)).item()
        mean_p = F.softmax(lg, -1).reshape(-1, lg.shape[-1]).mean(0)
        kl = (mean_p * (mean_p.clamp_min(1e-12).log() - unigram.log())).sum().item()
        out.append((ce, kl))
    return out


def gradient_figures(model, rows):
    model.train()
    model.zero_grad()
    model(rows).loss.backward()
    groups = {"embedding": [], "unembedding": [], "blocks": []}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        key = "embedding" if "embed_tokens" in name else "unembedding" if "lm_head" in name else "blocks"
        groups[key].append(p.grad.pow(2).sum())
    model.eval()
    return {k: float(sum(v) ** 0.5) for k, v in groups.items() if v}


def anatomy(run_dir: Path, max_rows: int) -> None:
    import numpy as np
    import torch

    from harness.data.prepare import prepare_data
    from harness.eval.analyses.analyze import recipe_dir_of
    from harness.eval.analyses.heldout import document_rows
    from harness.eval.analyses.reference_losses import _train_tokens
    from harness.model.export import load_exported
    from harness.recipe import load_recipe

    recipe = load_recipe(run_dir / "recipe.yaml")
    prepared = prepare_data(recipe.data, vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len,
                            base_dir=recipe_dir_of(run_dir))  # fmt: skip
    model = load_exported(run_dir / "export").eval()
    n = model.objective_cfg.n_predict
    rows = torch.from_numpy(document_rows(prepared, recipe.seq_len + n, max_rows)[0])
    counts = np.bincount(_train_tokens(prepared), minlength=prepared.vocab_size) + 0.5
    unigram = torch.tensor(counts / counts.sum(), dtype=torch.float32)
    print(f"\n{run_dir.name}: {recipe.objective.label()}, lr {recipe.train.optimizer.lr:g}, {len(rows)} rows of "
          f"{recipe.seq_len} tokens; unigram entropy {float(-(unigram * unigram.log()).sum()):.3f} nats")
    for i, (norm, share) in enumerate(residual_figures(model, rows)):
        print(f"  after block {i + 1:2d}: |h| {norm:7.2f}   constant share {share:.2f}")
    for k, (ce, kl) in enumerate(depth_figures(model, rows, unigram), start=1):
        print(f"  depth {k}: cross-entropy {ce:.3f}   KL(mean prediction || unigram) {kl:.3f}")
    grads = gradient_figures(model, rows[: min(8, len(rows))])
    print("  gradient norms: " + ", ".join(f"{k} {v:.3g}" for k, v in grads.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--rows", type=int, default=32)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    for run in args.runs:
        anatomy(run, args.rows)


if __name__ == "__main__":
    main()
