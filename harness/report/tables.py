"""The comparison as text: one set of formatted columns, rendered as a rich table, Markdown,
CSV (raw numbers, one row per arm) and JSON (everything, for scripts and papers)."""

from __future__ import annotations

import csv
import io
import json

from harness.report.comparison import ArmRow
from harness.report.published import Reported

TASK_NAMES = {"humaneval": "HumanEval", "mbpp": "MBPP"}


def _metric_name(metric: str) -> str:
    if metric == "val_loss":
        return "val loss"
    task, _, name = metric.partition("/")
    return f"{TASK_NAMES.get(task, task)} {name.replace('pass_at_', 'pass@')}"


def fmt_gain(g: dict | None) -> str:
    """'+1.2 [-0.5, +3.0]*': mean, 95% interval, * when the interval excludes zero."""
    if not g:
        return "-"
    if g.get("note"):
        return g["note"]
    digits = 3 if g["unit"].startswith("nats") else 1
    star = "*" if g["excludes_zero"] else ""
    return f"{g['mean']:+.{digits}f} [{g['low']:+.{digits}f}, {g['high']:+.{digits}f}]{star}"


def _acceptance(row: ArmRow) -> str:
    parts = [f"d{d} {a['agree_greedy']:.2f}/{a['correct']:.2f}" for d, a in row.acceptance.items()
             if a.get("agree_greedy") is not None and a.get("correct") is not None]
    if row.speculative.get("speedup") is not None:
        parts.append(f"spec {row.speculative['speedup']:.2f}x")
    return ", ".join(parts) or "-"


def arm_columns(rows: list[ArmRow]) -> tuple[list[str], list[list[str]]]:
    metrics = sorted({m for row in rows for m in row.metrics}, key=lambda m: (m.split("/")[0], int(m.split("_")[-1])))
    headers = ["arm", "objective", "seeds", "params", "train FLOPs", "tokens", "targets/step",
               "val loss", "Δ val loss [95% CI]"]
    for metric in metrics:
        headers += [_metric_name(metric), f"Δ {_metric_name(metric)} [95% CI]"]
    headers += ["acceptance agree/correct", "prompts cut"]
    body = []
    for row in rows:
        cells = [row.arm, row.objective, ",".join(map(str, row.seeds)), f"{row.params:,}", f"{row.train_flops:.3g}",
                 f"{row.tokens:,}", f"{row.targets_per_step:,}",
                 "-" if row.val_loss is None else f"{row.val_loss:.4f}", fmt_gain(row.gains.get("val_loss"))]
        for metric in metrics:
            value = row.metrics.get(metric)
            cells += ["-" if value is None else f"{value:.1f}", fmt_gain(row.gains.get(metric))]
        cells.append(_acceptance(row))
        cells.append(", ".join(f"{TASK_NAMES.get(t, t)} {n}" for t, n in sorted(row.truncated.items())) or "-")
        body.append(cells)
    return headers, body


REPORTED_HEADERS = ["source", "where", "method", "model", "data", "n", "benchmark", "protocol",
                    "baseline", "MTP", "gain", "flag"]


def reported_cells(reported: tuple[Reported, ...]) -> list[list[str]]:
    def num(x):
        return "-" if x is None else f"{x:.1f}"

    return [[r.source, r.where, r.method, r.model, r.data, r.n, r.benchmark, r.protocol, num(r.baseline), num(r.mtp),
             f"{r.gain:+.1f}", ("⚠ " + r.flag) if r.flag else ""] for r in reported]


VERDICT_HEADERS = ["claim", "arms", "statistic", "estimate [95% CI]", "verdict", "detail"]


def verdict_cells(verdicts) -> list[list[str]]:
    out = []
    for v in verdicts:
        if v.estimate is None:
            est = "-"
        else:
            d = 2 if "percentage" in v.unit else 4
            est = f"{v.estimate:+.{d}f} [{v.low:+.{d}f}, {v.high:+.{d}f}] {v.unit}"
        out.append([v.claim, v.arms, v.statistic, est, v.verdict, v.text])
    return out


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def to_csv(rows: list[ArmRow]) -> str:
    """One row per arm, raw numbers: pass@k in percent, gains with their interval bounds."""
    metrics = sorted({m for row in rows for m in row.metrics} | {m for row in rows for m in row.gains})
    fields = ["arm", "objective", "seeds", "params", "train_flops", "tokens", "targets_per_step", "val_loss"]
    for metric in metrics:
        fields += [metric] if metric != "val_loss" else []
        fields += [f"gain:{metric}:{part}" for part in ("mean", "low", "high", "excludes_zero")]
    depths = sorted({d for row in rows for d in row.acceptance}, key=int)
    fields += [f"acceptance:d{d}:{k}" for d in depths for k in ("agree_greedy", "correct")] + ["speculative_speedup"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {"arm": row.arm, "objective": row.objective, "seeds": " ".join(map(str, row.seeds)),
               "params": row.params, "train_flops": row.train_flops, "tokens": row.tokens,
               "targets_per_step": row.targets_per_step, "val_loss": row.val_loss,
               "speculative_speedup": row.speculative.get("speedup")}
        for metric in metrics:
            if metric != "val_loss":
                out[metric] = row.metrics.get(metric)
            for part in ("mean", "low", "high", "excludes_zero"):
                out[f"gain:{metric}:{part}"] = row.gains.get(metric, {}).get(part)
        for d in depths:
            for k in ("agree_greedy", "correct"):
                out[f"acceptance:d{d}:{k}"] = row.acceptance.get(d, {}).get(k)
        writer.writerow(out)
    return buffer.getvalue()


def to_json(document: dict) -> str:
    return json.dumps(document, indent=1, sort_keys=True, default=str) + "\n"


def print_rich(title: str, rows: list[ArmRow], reported, verdicts, problems: list[str], console) -> None:
    from rich.table import Table

    def table(name: str, headers: list[str], body: list[list[str]]) -> Table:
        t = Table(title=name, title_justify="left", show_lines=False)
        for h in headers:
            t.add_column(h, overflow="fold")
        for cells in body:
            t.add_row(*cells)
        return t

    # Two tables in the terminal (cost, then results); the files keep one row per arm.
    headers, body = arm_columns(rows)
    split = headers.index("val loss")
    console.print(table(title, headers[:split], [cells[:split] for cells in body]))
    console.print(table("results", headers[:1] + headers[split:], [cells[:1] + cells[split:] for cells in body]))
    console.print("Δ: arm minus baseline; * the 95% interval excludes zero. pass@k in percent.")
    for problem in problems:
        console.print(f"[bold red]forced:[/] {problem}")
    if verdicts:
        console.print(table("verdicts", ["arms", "statistic", "estimate [95% CI]", "verdict"],
                            [c[1:5] for c in verdict_cells(verdicts)]))
    cited = [[f"{c[0].split(',')[0]}, {c[1]}", *c[3:7], *c[8:]] for c in reported_cells(reported)]
    console.print(table("reported (published) gains, pass@1 percentage points",
                        ["source", "model", "data", "n", "benchmark", "baseline", "MTP", "gain", "flag"], cited))
