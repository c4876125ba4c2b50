"""Per-position loss: next-token cross-entropy at each input position of held-out rows.

The blog's point 2 (Müller 2025; FACTS.md) predicts that MTP helps late positions more than
early ones, so the comparison of arms is the loss *by position*, not its mean. Every arm
sharing the data and S scores the same tokens: rows of S+1 tokens (input positions 0..S-1,
targets 1..S) from the loader's fixed validation windows, whatever the objective's own row
length, and only the next-token path is scored (what export writes as the Llama model).

Files (the format `harness compare` reads):
  per_position.npy  float32 [rows, S], nats; row r, column i: -log p(t_{i+1} | t_0..t_i)
  per_position.csv  bin_start, bin_end, mean_loss, n: positions [bin_start, bin_end)
                    (half-open), the mean over every row and position in it, n values
  per_position.png, per_position.svg: mean loss by position, with the bins
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from harness import rundir
from harness.devices import device_of, to_device
from harness.model.mtp_model import MTPModel

BINS = 16


@torch.no_grad()
def position_losses(model: MTPModel, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """float32 [rows, S] from row batches of S+1 tokens each (on the model's device)."""
    model.eval()
    out, device = [], device_of(model)
    for rows in batches:
        rows = to_device(rows, device)
        S = rows.shape[1] - 1
        logits = model.next_token_logits(rows[:, :S])  # (B, S, V)
        ce = F.cross_entropy(logits.float().transpose(1, 2), rows[:, 1 : S + 1], reduction="none")  # (B, S)
        out.append(ce.cpu().numpy().astype(np.float32))
    return np.concatenate(out)


def bin_edges(S: int, bins: int = BINS) -> np.ndarray:
    """bins + 1 increasing edges from 0 to S (fewer bins when S < bins)."""
    return np.unique(np.linspace(0, S, min(bins, S) + 1).round().astype(np.int64))


def binned(losses: np.ndarray, bins: int = BINS) -> list[dict]:
    """One dict per bin: bin_start, bin_end (exclusive), mean_loss, n."""
    edges = bin_edges(losses.shape[1], bins)
    return [
        {"bin_start": int(a), "bin_end": int(b), "mean_loss": float(losses[:, a:b].mean(dtype=np.float64)),
         "n": int(losses[:, a:b].size)}
        for a, b in zip(edges[:-1], edges[1:])
    ]  # fmt: skip


def write_position_files(losses: np.ndarray, out_dir: Path, title: str = "") -> dict:
    """The three files above; returns the summary metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / rundir.PER_POSITION, losses.astype(np.float32))
    rows = binned(losses)
    with open(out_dir / "per_position.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["bin_start", "bin_end", "mean_loss", "n"])
        writer.writeheader()
        writer.writerows({**r, "mean_loss": f"{r['mean_loss']:.6f}"} for r in rows)
    plot_positions(losses, rows, out_dir, title)
    return {
        "position/loss_mean": float(losses.mean(dtype=np.float64)),
        "position/loss_first_bin": rows[0]["mean_loss"],
        "position/loss_last_bin": rows[-1]["mean_loss"],
        "position/rows": int(losses.shape[0]),
        "position/seq_len": int(losses.shape[1]),
    }


def plot_positions(losses: np.ndarray, rows: list[dict], out_dir: Path, title: str = "") -> list[Path]:
    from harness.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(np.arange(losses.shape[1]), losses.mean(axis=0), color="C0", alpha=0.4, lw=1, label="per position")
    starts = [r["bin_start"] for r in rows] + [rows[-1]["bin_end"]]
    means = [r["mean_loss"] for r in rows]
    ax.stairs(means, starts, color="C0", lw=2, label=f"mean of {len(rows)} bins")
    ax.set_xlabel("input position i (predicting token i+1)")
    ax.set_ylabel("next-token cross-entropy (nats)")
    ax.set_title(f"{title} ({losses.shape[0]} held-out rows)".strip())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [out_dir / "per_position.png", out_dir / "per_position.svg"]
    for path in paths:
        fig.savefig(path, dpi=120, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths
