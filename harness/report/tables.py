"""The comparison as text: one set of formatted columns, rendered as a rich table, Markdown,
CSV (raw numbers, one row per arm) and JSON (everything, for scripts and papers)."""

from __future__ import annotations

import csv
import io
import json

from harness.data.benchmarks import TASK_NAMES
from harness.report.arm_rows import ArmRow
from harness.report.probe_outcomes import LABELS as PROBE_LABELS
from harness.report.probe_outcomes import PROBE_METRICS
from harness.report.published import Reported


def _metric_name(metric: str) -> str:
    if metric == "val_loss":
        return "val loss"
    if metric in PROBE_LABELS:
        return PROBE_LABELS[metric]
    if metric.startswith("nll/"):
        task = metric.split("/", 1)[1]
        return f"{TASK_NAMES.get(task, task)} NLL bits/byte"
    task, _, name = metric.partition("/")
    return f"{TASK_NAMES.get(task, task)} {name.replace('pass_at_', 'pass@')}"


def fmt_gain(g: dict | None) -> str:
    """'+1.2 [-0.5, +3.0]*': mean, 95% interval across seeds, * when it and the data-sampling
    interval both exclude zero on the same side."""
    if not g:
        return "-"
    if g.get("note"):
        return g["note"] + (f" ({g['mean']:+.3g})" if g.get("low") is None and g.get("mean") is not None else "")
    digits = 3 if g["unit"].startswith(("nats", "bits")) else 1
    star = "*" if g["excludes_zero"] else ""
    return f"{g['mean']:+.{digits}f} [{g['low']:+.{digits}f}, {g['high']:+.{digits}f}]{star}"


def fmt_data(g: dict | None) -> str:
    """The data-sampling-only interval of a gain: '[-0.5, +3.0]'."""
    if not g or g.get("data_low") is None or (g.get("note") or "").startswith("neither"):
        return "-"
    digits = 3 if g["unit"].startswith(("nats", "bits")) else 1
    return f"[{g['data_low']:+.{digits}f}, {g['data_high']:+.{digits}f}]"


def _si(x: float) -> str:
    """2156160 -> '2.16M': costs read at a glance (the CSV and JSON keep every digit)."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _acceptance(row: ArmRow) -> str:
    parts = [f"{row.depth_names.get(d, 'd' + d)} {a['agree_greedy']:.2f}/{a['correct']:.2f}"
             for d, a in row.acceptance.items()
             if a.get("agree_greedy") is not None and a.get("correct") is not None]
    if row.speculative.get("tokens_per_step") is not None:  # the decoder's own count; wall-clock beside it
        speedup = row.speculative.get("speedup")
        parts.append(f"spec {row.speculative['tokens_per_step']:.2f} tok/step"
                     + (f" {speedup:.2f}x" if speedup is not None else ""))
    elif row.speculative.get("speedup") is not None:
        parts.append(f"spec {row.speculative['speedup']:.2f}x")
    return ", ".join(parts) or "-"


def metric_order(metric: str) -> tuple:
    """pass@k by task then k, the probes in PROBE_METRICS's order after them."""
    if metric in PROBE_METRICS:
        return (1, "", list(PROBE_METRICS).index(metric))
    return (0, metric.split("/")[0], int(metric.split("_")[-1]))


def arm_label(row: ArmRow) -> str:
    """The arm's name, marked when it is a negative control, collapsed or stuck (gain not
    interpretable) or measured against an arm other than the study's baseline."""
    marks = (["control"] if row.control_of else []) + (["COLLAPSED"] if row.collapsed else [])
    marks += ["STUCK"] if row.stuck else []
    marks += [f"vs {row.baseline}"] if row.baseline else []
    return f"{row.arm} ({', '.join(marks)})" if marks else row.arm


def arm_columns(rows: list[ArmRow]) -> tuple[list[str], list[list[str]]]:
    """One row per arm: what it cost and what it scored (means over seeds). The gains, with
    their intervals, are the gains table's (`gain_cells`), so this one stays narrow."""
    metrics = sorted({m for row in rows for m in row.metrics}, key=metric_order)
    nll = sorted({m for row in rows for m in row.nll})
    headers = ["arm", "objective", "seeds", "params", "train FLOPs", "tokens", "val loss"]
    headers += [_metric_name(m) for m in nll + metrics] + ["acceptance agree/correct", "prompts cut"]
    body = []
    for row in rows:
        cells = [arm_label(row), row.objective, ",".join(map(str, row.seeds)), _si(row.params),
                 _si(row.train_flops), _si(row.tokens), "-" if row.val_loss is None else f"{row.val_loss:.4f}"]
        cells += ["-" if row.nll.get(m) is None else f"{row.nll[m]:.4f}" for m in nll]
        cells += ["-" if row.metrics.get(m) is None else f"{row.metrics[m]:.1f}" for m in metrics]
        cells.append(_acceptance(row))
        cells.append(", ".join(f"{TASK_NAMES.get(t, t)} {n}" for t, n in sorted(row.truncated.items())) or "-")
        body.append(cells)
    return headers, body


def code_benchmarks(rows: list[ArmRow]) -> bool:
    """The runs scored HumanEval/MBPP (pass@k or canonical NLL): the published rows relate."""
    return any(m.startswith(("humaneval/", "mbpp/")) for row in rows for m in row.metrics) or any(row.nll for row in rows)


def _short(v) -> str:
    """A verdict row in a few words: 'meta_n2 vs stp: not distinguishable (+0.0011 [-0.0046, +0.0059])'."""
    d = 2 if "percentage" in v.unit else 4
    interval = "" if v.low is None else f" [{v.low:+.{d}f}, {v.high:+.{d}f}]"
    holm = "" if v.holm_p is None else f" Holm p{'<0.001' if v.holm_p < 0.001 else f'={v.holm_p:.3f}'}"
    numbers = "" if v.estimate is None else f" ({v.estimate:+.{d}f}{interval}{holm})"
    metric = f" on {v.statistic.split(' on ', 1)[1]}" if " on " in v.statistic else ""
    # A row decided on its own intervals whose family-wide (Holm) p is above 5% says so: one of
    # the family's claims may be such a chance finding.
    alone = (" - on its own, not after Holm's adjustment" if v.holm_p is not None and v.holm_p > 0.05
             and v.low is not None and (v.low > 0 or v.high < 0) and v.verdict != "not distinguishable at this scale"
             else "")
    return f"{v.arms}{metric}: {v.verdict.removesuffix(' at this scale')}{numbers}{alone}"


def headline_lines(verdicts) -> list[str]:
    """One line per claim, claims with a testable row first; rows that cannot be tested are
    folded into a count with their reasons, so the answer is the first thing a reader sees."""
    claims: dict[str, list] = {}
    for v in verdicts:
        claims.setdefault(v.claim, []).append(v)
    lines = []
    for claim, rows in claims.items():
        tested = [v for v in rows if v.verdict != "not testable"]
        untested = [v for v in rows if v.verdict == "not testable"]
        parts = [_short(v) for v in tested if v.estimate is not None]
        exact: dict[str, list[str]] = {}  # checks without numbers (exact equality): one count per outcome
        for v in tested:
            if v.estimate is None:
                exact.setdefault(v.verdict, []).append(v.arms)
        parts += [f"{len(arms)} rows {verdict} ({', '.join(dict.fromkeys(arms))})" for verdict, arms in exact.items()]
        if untested:
            reasons = sorted({v.text.removeprefix("not testable: ").split(";")[0].split(" (")[0] for v in untested})
            parts.append(f"{len(untested)} not testable ({'; '.join(reasons)})")
        lines.append((not tested, f"**{claim}**: " + "; ".join(parts)))
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


GAIN_HEADERS = ["arm", "metric", "Δ [95% CI across seeds]", "how", "data sampling only", "p"]


def gain_cells(rows: list[ArmRow]) -> list[list[str]]:
    """Every gain in long form: the interval across seeds, its method, the data-sampling one."""
    out = []
    for row in rows:
        for metric in sorted(row.gains, key=lambda m: (m != "val_loss", not m.startswith("nll/"), m)):
            g = row.gains[metric]
            how = g.get("method") or g.get("untestable") or ""
            out.append([arm_label(row), _metric_name(metric), fmt_gain(g), how, fmt_data(g),
                        _p(g.get("p") if g.get("data_p") is None or g.get("p") is None else max(g["p"], g["data_p"]))])
    return out


REFERENCE_HEADERS = ["model", "next-token loss on the held-out documents (nats)"]


def reference_cells(references: dict[str, float], rows: list[ArmRow], held_out: dict[str, float]) -> list[list[str]]:
    """The count-based references beside each arm's mean per-position loss on the same rows."""
    out = [[f"{name.replace('_', '-')} (counts of the training split)", f"{value:.4f}"]
           for name, value in sorted(references.items(), key=lambda kv: -kv[1])]
    out += [[arm_label(row), f"{held_out[row.arm]:.4f}"] for row in rows if held_out.get(row.arm) is not None]
    return out


SWEEP_HEADERS = ["arm", "learning rate", "val loss", "chosen", "collapsed"]


def sweep_cells(sweep: dict | None) -> list[list[str]]:
    if not sweep:
        return []
    out = []
    for p in sorted(sweep["points"], key=lambda p: (p["arm"], p["lr"])):
        chosen = p["lr"] == sweep["chosen"].get(p["arm"])
        mark = ("yes (CAPPED at the grid's edge)" if sweep["edge"].get(p["arm"]) else "yes") if chosen else ""
        loss = "-" if p["val_loss"] is None else f"{p['val_loss']:.4f}"
        out.append([p["arm"], f"{p['lr']:g}", loss, mark, "; ".join(p["collapsed"]) or ""])
    return out


VIEW_HEADERS = ["view", "arm", "seeds", "tokens", "train FLOPs", "params", "Δ val loss [95% CI]", "Δ NLL bits/byte"]


def view_cells(views: list[dict]) -> list[list[str]]:
    out = []
    for v in views:
        nll = ", ".join(f"{_metric_name(m).split(' ')[0]} {fmt_gain(g)}" for m, g in sorted(v["gains"].items())
                        if m.startswith("nll/")) or "-"
        out.append([v["view"], v["arm"], ",".join(map(str, v["seeds"])), f"{v['tokens']:,}", f"{v['train_flops']:.3g}",
                    f"{v['params']:,}", v.get("note") or fmt_gain(v["gains"].get("val_loss")), nll])
    return out


REPORTED_HEADERS = ["source", "where", "method", "model", "data", "n", "benchmark", "protocol",
                    "baseline", "MTP", "gain", "flag"]


def reported_cells(reported: tuple[Reported, ...]) -> list[list[str]]:
    def num(x):
        return "-" if x is None else f"{x:.1f}"

    return [[r.source, r.where, r.method, r.model, r.data, r.n, r.benchmark, r.protocol, num(r.baseline), num(r.mtp),
             f"{r.gain:+.1f}", ("⚠ " + r.flag) if r.flag else ""] for r in reported]


PROBE_CLAIM_HEADERS = ["source", "where", "probe", "models (non-embedding)", "n", "metric", "direction", "claim"]

VERDICT_HEADERS = ["claim", "arms", "statistic", "estimate [95% CI across seeds]", "data sampling only", "p",
                   "Holm p", "verdict", "detail"]


def verdict_headers(family: int | None) -> list[str]:
    """The verdict table's headers; the Holm column names its family's size."""
    return VERDICT_HEADERS[:6] + [f"Holm p ({family} claim rows)" if family is not None else "Holm p"] + VERDICT_HEADERS[7:]


def _p(p: float | None) -> str:
    return "-" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def verdict_cells(verdicts) -> list[list[str]]:
    out = []
    for v in verdicts:
        d = 2 if "percentage" in v.unit else 4
        if v.estimate is None:
            est = "-"
        elif v.low is None:
            est = f"{v.estimate:+.{d}f} (no interval) {v.unit}"
        else:
            est = f"{v.estimate:+.{d}f} [{v.low:+.{d}f}, {v.high:+.{d}f}] {v.unit}"
        data = "-" if v.data_low is None or v.estimate is None else f"[{v.data_low:+.{d}f}, {v.data_high:+.{d}f}]"
        out.append([v.claim, v.arms, v.statistic, est, data, _p(v.p), _p(v.holm_p), v.verdict, v.text])
    return out


def protocol_sections(document: dict, rows: list[ArmRow]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, headers, body, note) of each table that says how the gains were made
    comparable: references, learning-rate sweep, secondary views. Empty ones are left out."""
    protocol = document.get("protocol") or {}
    out = []
    if protocol.get("references"):
        body = reference_cells(protocol["references"], rows, protocol.get("held_out_loss", {}))
        out.append(("Reference losses of the held-out documents", REFERENCE_HEADERS, body,
                    "Count-based unigram, bigram and skip-bigram models of the training split (Witten-Bell, no tuned "
                    "constant) scored on the same held-out rows as every arm (eval/reference_losses.py). An arm "
                    "within 0.2 nats of the unigram, or with all depths equal, is flagged COLLAPSED."))
    if document.get("probe_claims"):
        body = [[c["source"], c["where"], c["probe"], c["models"], c["n"], c["metric"], c["direction"], c["claim"]]
                for c in document["probe_claims"]]
        out.append(("Published probe claims (the paper plots them: no numbers)", PROBE_CLAIM_HEADERS, body,
                    document["methods"]["probes"]))
    if protocol.get("sweep"):
        grids = "; ".join(f"{arm} {', '.join(f'{lr:g}' for lr in grid)}"
                          for arm, grid in (protocol["sweep"].get("grids") or {}).items())
        out.append(("Learning-rate sweep (every arm, same grid)", SWEEP_HEADERS, sweep_cells(protocol["sweep"]),
                    "Each arm trained at every rate on the sweep seed, which no arm reports; the lowest final "
                    "next-token validation loss among healthy (not collapsed) points chose its rate for every seed and "
                    "view, and a choice on the grid's edge added the next rate beyond it until the choice was interior "
                    "or the study's cap was reached (CAPPED) (harness/study/lr_sweep.py). Final grids: " + (grids or "-") + "."))
    if protocol.get("views"):
        out.append(("Secondary views", VIEW_HEADERS, view_cells(protocol["views"]),
                    "params: the main table's runs, parameter-matched arms only; flops: arms trained again at the "
                    "baseline's training FLOPs (harness/report/views.py)."))
    return out


def matching_line(document: dict) -> str:
    matching = (document.get("protocol") or {}).get("matching")
    if not matching:
        return "Matching rule: not recorded (runs compared without their study file)."
    views = ", ".join(matching["views"]) or "none"
    return (f"Main table: matching rule **{matching['rule']}** ({matching['text']}; tolerance "
            f"{matching['tolerance']:.0%}). Secondary views: {views}.")


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


GAIN_PARTS = ("mean", "low", "high", "data_low", "data_high", "p", "excludes_zero")


def to_csv(rows: list[ArmRow]) -> str:
    """One row per arm, raw numbers: pass@k in percent, gains with their interval bounds."""
    metrics = sorted({m for row in rows for m in row.metrics} | {m for row in rows for m in row.gains}
                     | {m for row in rows for m in row.nll})
    fields = ["arm", "objective", "seeds", "control_of", "baseline", "collapsed", "stuck", "params", "train_flops",
              "tokens", "targets_per_step", "val_loss"]
    for metric in metrics:
        fields += [metric] if metric != "val_loss" else []
        fields += [f"gain:{metric}:{part}" for part in GAIN_PARTS]
    depths = sorted({d for row in rows for d in row.acceptance}, key=int)
    fields += [f"acceptance:d{d}:{k}" for d in depths for k in ("agree_greedy", "correct")] + ["speculative_speedup"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {"arm": row.arm, "objective": row.objective, "seeds": " ".join(map(str, row.seeds)),
               "control_of": row.control_of or "", "baseline": row.baseline or "", "collapsed": " | ".join(row.collapsed),
               "stuck": " | ".join(row.stuck), "params": row.params, "train_flops": row.train_flops, "tokens": row.tokens,
               "targets_per_step": row.targets_per_step, "val_loss": row.val_loss,
               "speculative_speedup": row.speculative.get("speedup")}
        for metric in metrics:
            if metric != "val_loss":
                out[metric] = row.nll.get(metric) if metric.startswith("nll/") else row.metrics.get(metric)
            for part in GAIN_PARTS:
                out[f"gain:{metric}:{part}"] = row.gains.get(metric, {}).get(part)
        for d in depths:
            for k in ("agree_greedy", "correct"):
                out[f"acceptance:d{d}:{k}"] = row.acceptance.get(d, {}).get(k)
        writer.writerow(out)
    return buffer.getvalue()


def to_json(document: dict) -> str:
    return json.dumps(document, indent=1, sort_keys=True, default=str) + "\n"


def print_rich(title: str, rows: list[ArmRow], reported, verdicts, problems: list[str], console,
               document: dict | None = None, published: bool = False) -> None:
    """The comparison in the terminal, answer first: the verdicts in a line per claim, the gains
    with their intervals, the arms; the published rows only when asked (`--published`)."""
    from rich.markup import escape
    from rich.table import Table

    def table(name: str, headers: list[str], body: list[list[str]]) -> Table:
        t = Table(title=name, title_justify="left", show_lines=False)
        for h in headers:
            t.add_column(h, overflow="fold")
        for cells in body:
            t.add_row(*cells)
        return t

    console.print(f"[bold]{escape(title)}[/]")
    for problem in problems:
        console.print(f"[bold red]forced:[/] {escape(problem)}")
    for line in headline_lines(verdicts) or ["no verdicts: no MTP arm with the outputs they need"]:
        claim, _, rest = line.partition("**: ")
        console.print(f"[bold]{escape(claim.strip('*'))}[/]: {escape(rest)}" if rest else escape(line))
    gains = gain_cells(rows)
    if gains:
        console.print(table("gains over the baseline (95% interval across seeds; * both intervals exclude zero)",
                            [h for h in GAIN_HEADERS if h != "how"], [c[:3] + c[4:] for c in gains]))
    headers, body = arm_columns(rows)
    console.print(table("arms", headers, body))
    if published:
        for title_, headers_, body_, _ in protocol_sections(document or {}, rows):
            console.print(table(title_, headers_, body_))
        cited = [[f"{c[0].split(',')[0]}, {c[1]}", *c[3:7], *c[8:]] for c in reported_cells(reported)]
        console.print(table("reported (published) gains, pass@1 percentage points",
                            ["source", "model", "data", "n", "benchmark", "baseline", "MTP", "gain", "flag"], cited))
        for line in not_entered_lines():
            console.print(line)


def not_entered_lines() -> list[str]:
    """One line per paper whose objective is here but whose numbers are not in the rows."""
    from harness.report.published import NOT_ENTERED

    return [f"{n.source} ({n.method}): {n.why}" for n in NOT_ENTERED]
