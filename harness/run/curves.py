"""Loss curves of one run (per depth and loss part, training and validation) as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

from harness import rundir


def plot_run_losses(metrics_jsonl: Path, out_dir: Path) -> list[Path]:
    """Training loss per depth vs tokens seen, with validation points; returns the files."""
    if not Path(metrics_jsonl).exists():
        return []
    from harness.plotting import pyplot

    plt = pyplot()
    rows = rundir.read_jsonl(metrics_jsonl)
    rows = [r for r in rows if "tokens_seen" in r]
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # every loss part: depths first, then any other (TOP's ranking loss)
    parts = {k.split("/", 1)[1] for r in rows for k in r if k.startswith("loss/") and k != "loss/total"}
    depths = sorted(parts, key=lambda p: (not p.startswith("depth_"), p))
    for i, depth in enumerate(depths):
        color = f"C{i}"
        train = [(r["tokens_seen"], r[f"loss/{depth}"]) for r in rows if f"loss/{depth}" in r]
        val = [(r["tokens_seen"], r[f"val/{depth}"]) for r in rows if f"val/{depth}" in r]
        ax.plot(*zip(*train), color=color, alpha=0.5, lw=1, label=f"train {depth.replace('_', ' ')}")
        if val:
            ax.plot(*zip(*val), "o-", color=color, lw=1.5, label=f"val {depth.replace('_', ' ')}")
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel("loss (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "loss_curves.png", out_dir / "loss_curves.svg"]
    for path in paths:
        fig.savefig(path, dpi=120, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths
