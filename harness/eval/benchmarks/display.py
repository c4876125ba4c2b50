"""Console output of `harness eval`: short tables of pass@k and of what failed."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table


def _console():
    from harness.console import stdout_console

    return stdout_console()


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _metric_table(title: str, summary: dict, shown) -> Table:
    """Every metric of a summary (the keys with '/') as a two-column table."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if "/" in key:
            table.add_row(key, shown(key, value))
    return table


def print_summary(summary: dict, out: Path) -> None:
    """Metrics (keys with '/') as a table, then where the rows went."""
    title = f"protocol {summary['protocol']}, batch {summary['batch_size']}, sandbox {summary['sandbox_kind']}"

    def shown(key, value):
        return _pct(value) if "/pass_at_" in key and not key.endswith("_temperature") else f"{value:g}"

    console = _console()
    console.print(_metric_table(title, summary, shown))
    from harness.eval.sandbox.guarantees import as_lines

    for line in as_lines(summary):
        console.print(line, highlight=False)
    console.print(f"pass@k in percent; per-sample rows and summary.json in {out}")


def print_analysis(summary: dict, out: Path) -> None:
    """Per-position loss, head acceptance and speculative decoding metrics as a table."""
    title = f"analyses ({summary.get('analysis_seconds', '?')} s, {summary.get('analysis_threads', '?')} threads)"
    console = _console()
    console.print(_metric_table(title, summary, lambda key, value: f"{value:.4g}"))
    if "speculative_identical" in summary:
        console.print(f"speculative output identical to greedy: {summary['speculative_identical']}")
    if "speculative_transformers_identical" in summary:
        console.print(f"transformers generate(use_mtp=True): {summary['speculative/transformers_tokens_per_step']:.2f} "
                      f"tokens/step (ours {summary['speculative/tokens_per_step']:.2f}), output identical to greedy: "
                      f"{summary['speculative_transformers_identical']}")  # fmt: skip
    console.print(f"per_position.* and acceptance.json in {out}")


def print_score(task: str, summary: dict, out: Path) -> None:
    console = _console()
    ks = [key for key in summary if key.startswith("pass_at_")]
    scores = ", ".join(f"{key.replace('pass_at_', 'pass@')} {_pct(summary[key])}" for key in ks)
    console.print(
        f"{task}: {scores or 'no k fits every problem'} over {summary['problems']} of "
        f"{summary['benchmark_problems']} problems, {summary['samples']} samples "
        f"(passed {summary['passed']}, failed {summary['failed']}, timeout {summary['timeout']}, error {summary['error']})"
        + (f"; {summary['resumed']} rows were already in the rows file" if summary.get("resumed") else "")
    )
    console.print(f"rows: {out}")


def print_reference(task: str, summary: dict, rows: list[dict], kind: str) -> bool:
    """One line per task, then every canonical solution that did not pass and why."""
    console = _console()
    console.print(f"{task}: {summary['passed']}/{summary['samples']} canonical solutions pass (sandbox {kind})")
    for row in rows:
        if row["status"] != "passed":
            console.print(f"  {row['task_id']}: {row['status']}: {row['reason']}")
    return summary["passed"] == summary["samples"]
