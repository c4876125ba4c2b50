"""`harness compare` and `harness ui`: parse options and delegate."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(short_help="Gains with intervals across seeds, verdicts, reports")
@click.argument("targets", nargs=-1, metavar="[STUDY.yaml [KEY=VALUE...] | RUN_DIR...]")
@click.option("--experiment", help="compare the runs of this MLflow experiment (found by their run-directory tags)")
@click.option("--study", "study_tag", help="with --experiment: only runs tagged with this study")
@click.option("--runs", "runs_root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="where a study's run directories live")
@click.option("--baseline", help="baseline arm (default: the study's, or the only single-token arm)")
@click.option("--force", is_flag=True, help="compare runs even if their data, tokenizer or eval settings differ")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="output directory (default: results/<study>)")
@click.option("--no-mlflow", is_flag=True, help="do not log the comparison to MLflow")
@click.option("--published", is_flag=True,
              help="also print the protocol tables and the published gains (the files always hold them where they relate)")
def compare(targets: tuple[str, ...], experiment, study_tag, runs_root: str, baseline, force: bool,
            out_dir: Path | None, no_mlflow: bool, published: bool) -> None:
    """Reproduced gains, with 95% intervals across seeds, verdicts and reports (beside the published gains)."""
    from harness.console import stdout_console
    from harness.report import tables
    from harness.report.compare import find_runs, run_compare
    from harness.report.published import all_reported

    found = find_runs(targets, experiment, study_tag, Path(runs_root), force, out_dir)
    result = run_compare(found, baseline=baseline, out_dir=out_dir, force=force, log=not no_mlflow)
    console = stdout_console()
    tables.print_rich(f"study {found.name}: baseline {result.document['baseline']}", result.rows, all_reported(),
                      result.verdicts, result.document["not_comparable"], console, result.document, published)
    console.print(f"wrote {result.out_dir}/: comparison.md, comparison.csv, comparison.json, report.html, "
                  f"plots/ ({len([f for f in result.files if f.parent.name == 'plots'])} files)")
    run_id, problem = result.mlflow
    if run_id:
        console.print(f"MLflow: comparison run {run_id} (see `harness ui`)")
    elif problem:
        console.print(f"MLflow: not logged ({problem}); the results directory is complete")


@click.command(short_help="The MLflow UI on 127.0.0.1")
@click.argument("study_path", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--experiment", help="MLflow experiment to link to (default: the study's)")
def ui(study_path: str | None, port: int, experiment: str | None) -> None:
    """Start the MLflow UI on 127.0.0.1 for the configured store; print where a study's runs are."""
    from harness.console import stdout_console
    from harness.report.ui import serve

    serve(study_path, port, experiment, stdout_console())
