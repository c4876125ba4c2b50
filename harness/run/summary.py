"""The summary `harness run` prints at the end: where things are and what came out."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.rundir import RunDir


def headline(outcome) -> list[str]:
    """The answer before the details, each line under 100 columns: what the model scored and
    against what, then what to run next. Only the figures the run produced appear."""
    out = outcome.summary
    val = out.get("train", {}).get("val", {})
    ev = out.get("evaluate", {}).get("summary", {})
    lines = []
    if "val/depth_1" in val:
        deeper = [f"depth {k.rsplit('_', 1)[1]} {v:.3f}" for k, v in sorted(val.items())
                  if k.startswith("val/depth_") and k != "val/depth_1"]
        lines.append(f"validation loss {val['val/depth_1']:.3f} nats (next token)" + (f"; {', '.join(deeper)}" if deeper else ""))
    refs = [f"{name} {ev[f'reference/{name}']:.3f}" for name in ("bigram", "unigram") if f"reference/{name}" in ev]
    if refs and "position/loss_mean" in ev:  # the references are scored on the rows of the per-position loss
        rows = f"{int(ev['position/documents'])} held-out documents" if "position/documents" in ev else "held-out rows"
        lines.append(f"on {rows}: the model {ev['position/loss_mean']:.3f} nats, count-based {', '.join(refs)}")
    names = {"humaneval": "HumanEval", "mbpp": "MBPP"}
    scores = [f"{name} {100 * ev[f'{task}/pass_at_1']:.1f}% of {int(ev[f'{task}/problems'])}"
              for task, name in names.items() if f"{task}/pass_at_1" in ev and f"{task}/problems" in ev]
    if scores:
        lines.append(f"pass@1: {', '.join(scores)}")
    nll = [f"{name} {ev[f'nll/{task}/bits_per_byte']:.2f}" for task, name in names.items()
           if f"nll/{task}/bits_per_byte" in ev]
    if nll:
        lines.append(f"canonical-solution NLL, bits per byte: {', '.join(nll)}")
    if "acceptance/depth_2/agree_greedy" in ev:
        lines.append(f"MTP depth 2 agrees with greedy next-token decoding {100 * ev['acceptance/depth_2/agree_greedy']:.0f}%"
                     + (f", is correct {100 * ev['acceptance/depth_2/correct']:.0f}%"
                        if "acceptance/depth_2/correct" in ev else ""))
    if ev.get("collapse/flagged"):
        lines.append("COLLAPSED: this run's gains are not interpretable (details below)")
    return lines


def print_run_summary(outcome, console: Console) -> None:
    out = outcome.summary
    for line in headline(outcome):
        console.print(line, markup=False, highlight=False)
    table = Table(title=f"run {outcome.run_dir.name}: {outcome.status}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run directory", str(outcome.run_dir))
    train = out.get("train", {})
    if train:
        table.add_row("steps", str(train.get("step")))
        for key, value in sorted(train.get("val", {}).items()):
            table.add_row(key, f"{value:.4f}")
    evaluate = out.get("evaluate", {}).get("summary", {})
    for key, value in sorted(evaluate.items()):
        # metrics have a '/' in their name (`humaneval/pass_at_1`); the rest are run facts
        if "/" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
            table.add_row(key, str(int(value)) if float(value).is_integer() and "pass" not in key else f"{value:.4f}")
    for line in _sandbox_lines(evaluate):  # which guarantees held while model code ran
        table.add_row("sandbox", line)
    for reason in evaluate.get("collapse", []):  # eval/collapse.py: its gains are not an MTP effect
        table.add_row("[bold red]COLLAPSED[/]", f"{reason}; gains of this run are not interpretable")
    if "export" in out:
        table.add_row("export (Hugging Face)", str(RunDir(outcome.run_dir).export))
    track = out.get("track", {})
    if track.get("synced"):
        table.add_row("MLflow run", track["mlflow_run_id"])
    elif track.get("offline_reason"):
        table.add_row("MLflow", f"offline ({track['offline_reason']}); upload with `harness sync {outcome.run_dir}`")
    elif track:
        table.add_row("MLflow", "tracking disabled (track.enabled: false)")
    console.print(table)


def _sandbox_lines(evaluate: dict) -> list[str]:
    from harness.eval.sandbox.guarantees import as_lines

    return [line.split(": ", 1)[1] for line in as_lines(evaluate)] if "sandbox_kind" in evaluate else []


def print_study_summary(study, done, path, overrides, runs_root, console: Console) -> None:
    """One line per arm x seed, then the commands that compare and show the study."""
    table = Table(title=f"study {study.config.name}: {len(done)} runs", title_justify="left")
    for name in ("part", "arm", "seed", "status", "seconds", "run directory"):
        table.add_column(name)
    for run in done:
        table.add_row(run.part, run.arm, str(run.seed), run.status, f"{run.seconds:.0f}", str(run.run_dir))
    console.print(table)
    extra = "".join(f" {o}" for o in overrides) + ("" if str(runs_root) == "runs" else f" --runs {runs_root}")
    console.print(f"compare: harness compare {path}{extra}   (writes results/{study.config.name}/)")
    console.print(f"browse:  harness ui {path}")
