"""The study's static HTML report: tables and figures in one file that opens without a server.

Figures are embedded as inline SVG (no external files, no scripts), text is escaped by
jinja2's autoescape, and nothing in the page depends on the time it was written, so the
same comparison gives the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.report import tables

TEMPLATE = "report.html.j2"
CAPTIONS = {
    "metric_gains": "Gains over the baseline on the metrics that move, with 95% intervals across seeds (black: "
                    "both the interval across seeds and the data-sampling interval exclude zero; hollow: one seed).",
    "val_loss": "Validation next-token loss vs training tokens (left) and training FLOPs (right), per arm.",
    "per_position_ratio": "Next-token loss ratio arm / STP per position on the held-out documents (unmatched: a "
                          "weaker arm's ratio rises with position whatever its objective; the verdict uses the "
                          "matched-loss statistic), with its 95% band across seeds; dotted lines mark the first and "
                          "last quarters.",
    "gains": "pass@1 gains over the baseline: published (papers, blog; [!] flagged) and reproduced with 95% intervals.",
    "probe_gains": "Probe gains of each multi-token arm over the STP arm of its model size, with 95% intervals "
                   "across seeds (hollow: one seed, no interval).",
    "polynomial_by_ops": "Polynomial exact match by number of operations, per arm (mean over seeds); right of the "
                         "dotted line is out of distribution; dashed: chance.",
    "acceptance": "Head acceptance per depth: how often each extra head's greedy token agrees with the next-token "
                  "head's (wide bars) and is correct (narrow bars).",
}


def _inline_svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    return re.sub(r"<!DOCTYPE[^>]*>\s*", "", text, flags=re.S)


def render(document: dict, rows, reported, verdicts, figures: list[Path]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"),
                             autoescape=True, keep_trailing_newline=True)
    arm_headers, arm_body = tables.arm_columns(rows)
    svgs = [p for p in figures if p.suffix == ".svg"]
    return env.get_template(TEMPLATE).render(
        title=f"MTP study {document['study']}: reproduced vs reported gains",
        baseline=document["baseline"], n_runs=sum(len(r.run_dirs) for r in rows),
        manifest=document.get("data_manifest", "?")[:12], version=document.get("harness_version", "?"),
        commits=document.get("run_commits", []), problems=document.get("not_comparable", []),
        headlines=[line.replace("**", "") for line in tables.headline_lines(verdicts)], family=document.get("holm_family"),
        published=tables.code_benchmarks(rows),
        arm_headers=arm_headers, arm_body=arm_body, gains_note=document["methods"]["gains"],
        gain_headers=tables.GAIN_HEADERS, gain_body=tables.gain_cells(rows),
        matching=tables.matching_line(document).replace("**", ""),
        sections=[{"title": t, "headers": h, "body": b, "note": n} for t, h, b, n in tables.protocol_sections(document, rows)],
        verdict_headers=tables.verdict_headers(document.get("holm_family")), verdicts=tables.verdict_cells(verdicts),
        verdicts_note=document["methods"]["verdicts"],
        figures=[{"svg": _inline_svg(p), "caption": CAPTIONS.get(p.stem, p.stem), "stem": p.stem} for p in svgs],
        reported_headers=tables.REPORTED_HEADERS, reported_body=tables.reported_cells(reported),
        not_entered=tables.not_entered_lines(),
        runs=[d for r in rows for d in r.run_dirs],
    )


def write(path: Path, *args) -> Path:
    path.write_text(render(*args), encoding="utf-8")
    return path
