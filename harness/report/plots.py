"""The comparison's figures, each as PNG and SVG with deterministic SVG output.

Validation loss vs tokens and vs training FLOPs; the per-position MTP/STP loss ratio with
its bootstrap band; reproduced gains (with intervals) beside the published ones; head
acceptance per depth. SVGs carry no date and a fixed id salt, so re-plotting the same
numbers gives the same bytes and the committed reference results diff cleanly.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.benchmarks import TASK_NAMES
from harness.model.objectives.registry import method_name
from harness.plotting import pyplot as _pyplot
from harness.report.published import Reported

REPORTED_COLORS = ("C0", "C3", "C2", "C1", "C4", "C5")  # per published method, first Meta's, then DeepSeek's


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    with plt.rc_context({"svg.hashsalt": "mtp-harness", "svg.fonttype": "none"}):
        fig.savefig(paths[0], dpi=110, metadata={"Software": None})
        fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return paths


def arm_colors(arms) -> dict[str, str]:
    """One colour per arm in every figure (baseline first, so always C0)."""
    return {arm: f"C{i % 10}" for i, arm in enumerate(arms)}


def val_loss_curves(curves: dict[str, list[tuple[float, float, float]]], out_dir: Path) -> list[Path]:
    """curves: arm -> [(tokens, flops, loss)] (one seed's), baseline first."""
    if not any(curves.values()):
        return []
    plt = _pyplot()
    fig, (by_tokens, by_flops) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colors = arm_colors(curves)
    for arm, points in curves.items():
        if points:
            tokens, flops, loss = zip(*points)
            by_tokens.plot(tokens, loss, "o-", color=colors[arm], ms=3, label=arm)
            by_flops.plot(flops, loss, "o-", color=colors[arm], ms=3, label=arm)
    by_tokens.set_xlabel("training tokens")
    by_flops.set_xlabel("training FLOPs (forward + backward)")
    by_tokens.set_ylabel("validation next-token loss (nats)")
    for ax in (by_tokens, by_flops):
        ax.grid(alpha=0.3)
    by_flops.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir, "val_loss")


POSITION_BINS = 64  # positions averaged in bins: single positions (the first above all) are noisy ratios


def _binned(values, bins: int):
    """(bin centres, bin means) of a curve over positions."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    edges = np.linspace(0, len(values), min(bins, len(values)) + 1).astype(int)
    centres = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
    return centres, [values[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]


def position_ratio(curves: dict, colors: dict[str, str], out_dir: Path) -> list[Path]:
    """curves: arm -> stats.PositionRatio. Positions in bins, the y-axis on the curves' own range
    (a ratio of 250 at position 0 once flattened every curve to 1)."""
    if not curves:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    shown = []
    for arm, r in curves.items():
        x, ratio = _binned(r.ratio, POSITION_BINS)
        if r.low is not None:
            ax.fill_between(x, _binned(r.low, POSITION_BINS)[1], _binned(r.high, POSITION_BINS)[1],
                            color=colors[arm], alpha=0.2, lw=0)
        ax.plot(x, ratio, color=colors[arm], lw=1.2, label=f"{arm}: unmatched late - early {r.late_minus_early:+.3f}")
        shown += ratio
    low, high = min(shown + [1.0]), max(shown + [1.0])
    pad = 0.15 * (high - low) or 0.01
    ax.set_ylim(low - pad, high + pad)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    q = len(next(iter(curves.values())).ratio) // 4
    for edge in (q, 3 * q):
        ax.axvline(edge - 0.5, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("position in the window")
    ax.set_ylabel("next-token loss ratio (MTP / STP)")
    ax.set_title("per-position loss ratio (unmatched), 95% band across seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir, "per_position_ratio")


def _reported_label(r: Reported) -> str:
    where = "blog" if r.where == "blog table" else r.where
    return f"{method_name(r.method)} {r.model}, {r.data}, {r.n} ({where})" + (" [!]" if r.flag else "")


def _ours_label(row, gain: dict) -> str:
    return f"ours: {row.arm} ({row.objective})" + (" [none solved]" if gain.get("note") else "")


def metric_gains(rows, out_dir: Path) -> list[Path]:
    """One panel per metric that moves (held-out loss, canonical-solution NLL, pass@1 where some
    arm solves a problem): every arm's gain over its baseline with its 95% interval across
    seeds (black: both intervals exclude zero; hollow: one seed, no interval)."""
    names = {"val_loss": "held-out next-token loss (nats)"}
    wanted = ["val_loss", *sorted({m for r in rows for m in r.gains if m.startswith("nll/")}),
              *sorted({m for r in rows for m, g in r.gains.items() if m.endswith("pass_at_1") and not g.get("note")})]
    panels = [(m, [(r.arm if not r.baseline else f"{r.arm} (vs {r.baseline})", r.gains[m]) for r in rows
                   if m in r.gains and r.gains[m].get("mean") is not None]) for m in wanted]
    panels = [(m, ours) for m, ours in panels if ours]
    if not panels:
        return []
    plt = _pyplot()
    height = max(len(ours) for _, ours in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 1.3 + 0.34 * height), squeeze=False)
    for ax, (metric, ours) in zip(axes[0], panels):
        for y, (_, g) in enumerate(ours):
            _gain_point(ax, g, y)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(ours)), [name for name, _ in ours], fontsize=7)
        ax.set_ylim(len(ours) - 0.5, -0.5)
        task = metric.split("/", 1)[-1]
        title = names.get(metric) or (f"{TASK_NAMES.get(task, task)} canonical NLL (bits/byte)" if metric.startswith("nll/")
                                      else f"{TASK_NAMES.get(metric.split('/')[0], metric)} pass@1 (pp)")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("arm - baseline (lower is better)" if not metric.endswith("pass_at_1") else "arm - baseline")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("gains over the baseline, 95% interval across seeds (black: shown by both intervals)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, "metric_gains")


def gains(rows, reported: tuple[Reported, ...], out_dir: Path) -> list[Path]:
    """Horizontal dot plot per benchmark: published gains, then ours with 95% intervals; only
    where some arm solves a problem (a row of zeros beside the papers says nothing)."""
    if not any(m.endswith("pass_at_1") and not g.get("note") for r in rows for m, g in r.gains.items()):
        return []
    panels = []
    for task, bench in TASK_NAMES.items():
        ours = [(_ours_label(row, row.gains[f"{task}/pass_at_1"]), row.gains[f"{task}/pass_at_1"])
                for row in rows if f"{task}/pass_at_1" in row.gains]
        theirs = [r for r in reported if r.benchmark == bench]
        panels.append((bench, ours, theirs))
    if not any(ours for _, ours, _ in panels):
        return []
    plt = _pyplot()
    height = max(len(o) + len(t) for _, o, t in panels)
    fig, axes = plt.subplots(1, 2, figsize=(13, 1.2 + 0.24 * height))
    methods = list(dict.fromkeys(r.method for r in reported))  # in the order the rows come
    colors = {m: REPORTED_COLORS[i % len(REPORTED_COLORS)] for i, m in enumerate(methods)}
    for ax, (bench, ours, theirs) in zip(axes, panels):
        labels = [_reported_label(r) for r in theirs] + [name for name, _ in ours]
        for y, r in enumerate(theirs):
            ax.plot(r.gain, y, "D" if r.where == "blog table" else "o", color=colors[r.method], ms=4)
        for y, (_, g) in enumerate(ours, start=len(theirs)):
            _gain_point(ax, g, y)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(labels)), labels, fontsize=6.5)
        ax.invert_yaxis()
        ax.set_xlabel("pass@1 gain over the baseline (percentage points)")
        ax.set_title(bench, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("reported (circles: papers, diamonds: blog, [!] flagged) vs reproduced (squares, 95% CI)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, "gains")


def _gain_point(ax, g: dict, y: float) -> None:
    """A gain as a square with its interval across seeds (none from one seed: a hollow square)."""
    color = "k" if g.get("excludes_zero") else "grey"
    if g.get("low") is None:
        ax.plot(g["mean"], y, "s", mfc="none", color=color, ms=4)
        return
    ax.errorbar(g["mean"], y, xerr=[[g["mean"] - g["low"]], [g["high"] - g["mean"]]], fmt="s", color=color, ms=4,
                capsize=3)


def acceptance(rows, colors: dict[str, str], out_dir: Path) -> list[Path]:
    """Grouped bars: share of positions where each depth's head agrees with the next-token
    head's greedy choice (and is correct), per arm."""
    with_acc = [row for row in rows if row.acceptance]
    if not with_acc:
        return []
    plt = _pyplot()
    depths = sorted({d for row in with_acc for d in row.acceptance}, key=int)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(depths) * len(with_acc)), 3.8))
    width = 0.8 / len(with_acc)
    for i, row in enumerate(with_acc):
        xs = [depths.index(d) + i * width for d in row.acceptance]
        agree = [row.acceptance[d]["agree_greedy"] or 0 for d in row.acceptance]
        correct = [row.acceptance[d]["correct"] or 0 for d in row.acceptance]
        ax.bar(xs, agree, width * 0.9, color=colors[row.arm], alpha=0.45, label=f"{row.arm}: agrees with greedy")
        ax.bar(xs, correct, width * 0.5, color=colors[row.arm], label=f"{row.arm}: correct")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(depths))], [f"depth {d}" for d in depths])
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of held-out positions")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out_dir, "acceptance")


def probe_gains(rows, out_dir: Path) -> list[Path]:
    """One panel per probe metric with a gain: each arm's gain over its reference arm (the STP
    arm of its size) with its 95% interval, in percentage points."""
    from harness.report.probe_outcomes import LABELS, PROBE_METRICS

    metrics = [m for m in PROBE_METRICS if m.split("_")[0] != "polynomial/coefficient" and any(m in r.gains for r in rows)]
    if not metrics:
        return []
    plt = _pyplot()
    height = max(sum(m in r.gains for r in rows) for m in metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 1.4 + 0.32 * height), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ours = [(f"{r.arm} (vs {r.baseline})" if r.baseline else r.arm, r.gains[metric]) for r in rows if metric in r.gains]
        for y, (_, g) in enumerate(ours):
            _gain_point(ax, g, y)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(ours)), [name for name, _ in ours], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("gain over STP (percentage points)")
        ax.set_title(LABELS[metric], fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("probe gains with 95% intervals across seeds (black: a gain both intervals show)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, "probe_gains")


def polynomial_by_ops(groups: dict, colors: dict[str, str], out_dir: Path) -> list[Path]:
    """Exact match against the number of operations, per arm (mean over seeds, with a 95% t
    interval across them), with the last trained number of operations marked: the in- /
    out-of-distribution picture of Figure 8. Whole numbers of operations on the axis."""
    import numpy as np
    from scipy import stats as scipy_stats

    series, trained, chance = {}, None, None
    for arm, runs in groups.items():
        keys = sorted(k for k in runs[0].summary if k.startswith("polynomial/exact_match_m"))
        if keys:
            per_seed = np.array([[100 * float(r.summary.get(k, np.nan)) for k in keys] for r in runs])
            half = (scipy_stats.t.ppf(0.975, len(runs) - 1) * per_seed.std(axis=0, ddof=1) / np.sqrt(len(runs))
                    if len(runs) > 1 else None)
            series[arm] = ([int(k[-2:]) for k in keys], per_seed.mean(axis=0), half)
            trained = runs[0].summary.get("polynomial/train_max_ops", trained)
            chance = runs[0].summary.get("polynomial/chance", chance)
    if not series:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (arm, (ops, acc, half)) in enumerate(series.items()):
        x = np.array(ops) + (i - (len(series) - 1) / 2) * 0.06  # a small dodge so the intervals stay apart
        if half is not None:
            ax.errorbar(x, acc, yerr=half, fmt="o-", color=colors.get(arm), ms=3, capsize=2, lw=1, label=arm)
        else:
            ax.plot(x, acc, "o-", color=colors.get(arm), ms=3, label=arm)
    every = sorted({m for ops, _, _ in series.values() for m in ops})
    ax.set_xticks(every, [str(m) for m in every])
    if trained is not None:
        ax.axvline(trained + 0.5, color="grey", lw=0.8, ls=":")
        ax.text(trained + 0.55, ax.get_ylim()[1] * 0.95, "out of distribution", fontsize=7, va="top")
    if chance is not None:
        ax.axhline(100 * chance, color="k", lw=0.6, ls="--", label="chance")
    ax.set_xlabel("operations in the expression (m)")
    ax.set_ylabel("greedy exact match (%), mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir, "polynomial_by_ops")
