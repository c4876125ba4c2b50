"""`harness compare`: reproduced vs reported gains for a study's runs, written to results/<study>/.

Order of work: find the runs (study file, run directories or MLflow experiment; a study's
missing run directories are read from its committed records), refuse runs that are not
comparable (unless forced), flag stuck arms, build the arm rows and the verdicts (with
Holm-adjusted p-values across the claim rows), then write comparison.{json,md,csv}, the
figures, report.html and the per-run records, print the tables and log the directory to
MLflow. Outputs hold no timestamps or commit ids, so the same runs (or their records) give
the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import __version__, rundir
from harness.errors import HarnessError
from harness.report import html_report, plots, tables
from harness.report.arm_rows import build_rows, check_comparable, group_by_arm, per_seed_means
from harness.report.claims import control_checks, holm_adjust, long_sequence, meta_vs_deepseek
from harness.report.collect import RunRecord, load_run, runs_of_experiment
from harness.report.finetune_claims import FINETUNE_CLAIMS, finetune_verdicts
from harness.report.inference import SeedReference, reference_from_control
from harness.report.plateau import flag_stuck
from harness.report.probe_claims import probe_verdicts
from harness.report.published import NOT_ENTERED, PROBE_CLAIMS, all_reported
from harness.report.records import Records, write_records
from harness.report.study_runs import study_records
from harness.report.views import view_rows

METHODS = {
    "gains": "Gains are arm minus baseline over the same units: problems (pass@k: 1/0 per problem for greedy "
             "pass@1, the unbiased per-problem estimate for sampled pass@k; NLL: bits per byte of the problem's "
             "canonical solution given its benchmark prompt), held-out documents (val loss: mean next-token "
             "cross-entropy per document) or probe stories / expressions. The seed is the unit of inference: each "
             "seed gives one mean difference, and the 95% interval runs across seeds (Student t with n-1 degrees of "
             "freedom, paired by seed when both arms ran the same seeds, which share their data order; Welch when "
             "they ran different seeds; from one seed no interval, unless the study's negative control or a "
             "declared seed SD gives one, named in the row). Beside it, 'data sampling only' is a percentile "
             "bootstrap over the units with the seeds fixed. * marks a gain both intervals put on the same side of "
             "zero (harness/report/inference.py). 'val loss' is the final validation loss of the next-token head "
             "(val/depth_1). A COLLAPSED or STUCK arm is shown but its gain is not interpretable and it joins no "
             "verdict.",
    "verdicts": "Every verdict reads the interval across seeds and the data-sampling interval: 'supported' or "
                "'contradicted' only when both exclude zero on the same side (p = the larger of the two p-values); "
                "otherwise 'not distinguishable at this scale', which is not evidence of no effect (the interval "
                "bounds how large one could hide). Long sequences: D = R_late - R_early at matched overall loss, R_Q "
                "= arm's mean next-token loss over the positions in Q (first / last quarter of the window) divided "
                "by the baseline's, after replacing the better of the two runs by its own earlier checkpoint of equal "
                "mean loss (harness/report/matched_position.py), once per seed; the claim predicts D < 0. Meta vs "
                "DeepSeek: Meta - DeepSeek per unit, judged only between arms matched in trunk depth and FLOPs per "
                "token. Negative controls must come out null: the same arm on other seeds (every gain), and a "
                "shorter schedule of it (the matched D: it checks the checkpoint substitution). Holm's adjustment "
                "runs over the claim rows (not the controls); its family size is in the table's header.",
    "probes": "Probe scores (Gloeckle et al. Sec. 4) are per example: induction accuracy on the second token of "
              "each repeated two-token name, per test story (mentions of one story are not independent); "
              "polynomial exact match per test expression, in distribution (m <= the trained number of operations) "
              "and out of it. Each multi-token arm is judged against the STP arm of its own model size, across "
              "seeds; a gain where neither arm beats copying an earlier name (induction) or chance is not testable, "
              "and 'fades with size' needs an advantage at the smaller size. The paper gives these results only as "
              "plots, so its claims are listed in words, not numbers (harness/report/probe_claims.py, "
              "docs/FACTS.md).",
}


# Appended to the verdicts note when a study's arms start from a checkpoint (`_methods`).
FINETUNE_METHOD = (
    "From a checkpoint (`model.init_from`, harness/report/finetune_claims.py): continued MTP vs "
    "continued STP restates each gain of an MTP arm that trains the whole checkpoint as a verdict (the "
    "claim predicts a better next-token model); post hoc vs joint compares the acceptance of heads "
    "trained on the frozen trunk with that of the same objective trained jointly, per held-out row "
    "(each against its own next-token model), paired by seed, in percentage points (Mehra et al. 2025 "
    "predict post hoc < joint); self-distilled vs corpus targets compares two post-hoc arms of one "
    "objective on tokens per step of self-speculative decoding per prompt and on acceptance per "
    "held-out row (FastMTP 2025 predicts more for the distilled arm); and, as a check outside the Holm "
    "family, an arm with the trunk and unembedding frozen must score every unit exactly as the untouched "
    "checkpoint."
)


@dataclass
class Found:
    records: list[RunRecord]
    name: str
    baseline: str | None = None
    experiment: str | None = None
    study: object | None = None  # the loaded study, when compared from a study file
    sweep: object | None = None  # its learning-rate sweep (lr_sweep.SweepResult)
    runs_root: Path | None = None
    committed: Records | None = None  # the study's committed records (read where a run directory is missing)
    entries: list[dict] = field(default_factory=list)  # every run read: part, arm, seed, lr, run_dir


def find_runs(targets: tuple[str, ...], experiment: str | None, study_tag: str | None, runs_root: Path,
              force: bool, out_dir: Path | None = None) -> Found:
    """STUDY.yaml [KEY=VALUE...] | RUN_DIR... | --experiment NAME: the runs to compare."""
    from harness.study.design import is_study, load_study

    if experiment:
        if targets:
            raise HarnessError("give either --experiment or paths, not both", fix="drop one of them")
        records = runs_of_experiment(experiment, study_tag)
        return Found(records, study_tag or _common_tag(records) or experiment, experiment=experiment)
    if not targets:
        raise HarnessError("nothing to compare", fix="pass a study file, run directories, or --experiment NAME")
    first = Path(targets[0])
    if first.is_file() and is_study(first):
        study = load_study(first, targets[1:])
        committed = Records(Path(out_dir or Path("results") / study.config.name) / "records")
        sweep, runs, entries = study_records(study, runs_root, committed, allow_missing=force)
        return Found(runs, study.config.name, study.config.baseline, study=study, sweep=sweep, runs_root=runs_root,
                     committed=committed, entries=entries)
    stray = [t for t in targets if not Path(t).is_dir()]
    if stray:
        raise HarnessError(f"not a run directory or study file: {', '.join(stray)}",
                           fix="overrides (KEY=VALUE) only follow a study file")
    records = [load_run(t) for t in targets]
    entries = [{"part": "primary", "arm": r.arm, "seed": r.seed, "lr": None, "run_dir": r.run_dir} for r in records]
    return Found(records, _common_tag(records) or "compare", entries=entries)


def _common_tag(records: list[RunRecord]) -> str | None:
    names = {r.tags.get("study") for r in records}
    return names.pop() if len(names) == 1 and None not in names else None


def pick_baseline(records: list[RunRecord], given: str | None) -> str:
    if given:
        return given
    single = sorted({r.arm for r in records if "baseline" in r.claims()})
    if len(single) == 1:
        return single[0]
    raise HarnessError(f"cannot tell the baseline: {len(single)} single-token arms ({', '.join(single) or 'none'})",
                       fix="pass --baseline ARM")


@dataclass
class Comparison:
    out_dir: Path
    document: dict
    rows: list
    verdicts: list
    files: list[Path] = field(default_factory=list)
    mlflow: tuple[str | None, str | None] = (None, None)


def run_compare(found: Found, *, baseline: str | None, out_dir: Path | None, force: bool, log: bool = True,
                n_resamples: int = 10_000) -> Comparison:
    baseline = pick_baseline(found.records, baseline or found.baseline)
    groups = group_by_arm(found.records, baseline)
    problems = check_comparable(found.records, force)
    flag_stuck(groups, found.study, found.sweep)
    references = seed_references(groups, found.study)
    rows = build_rows(groups, n_resamples, references)
    position_verdicts, curves = long_sequence(groups, n_resamples=min(n_resamples, 2000))
    tolerance = found.study.config.matching.tolerance if found.study is not None else 0.01
    verdicts = (position_verdicts + meta_vs_deepseek(groups, n_resamples, tolerance, references)
                + probe_verdicts(groups, rows, n_resamples) + finetune_verdicts(groups, rows, n_resamples))
    verdicts += control_checks(groups, rows, position_verdicts)
    family = holm_adjust(verdicts)
    out_dir = Path(out_dir or Path("results") / found.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    reported = all_reported()
    document = _document(found, baseline, rows, verdicts, reported, problems)
    document["holm_family"] = family
    document["protocol"] = _protocol(found, groups, rows, n_resamples, force)
    figures = _figures(groups, rows, curves, reported if tables.code_benchmarks(rows) else (), out_dir / rundir.PLOTS)
    files = [*figures, *_write_texts(out_dir, document, rows, reported, verdicts)]
    files.append(html_report.write(out_dir / "report.html", document, rows, reported, verdicts, figures))
    if found.entries:
        write_records(found.entries, out_dir / "records", found.name)
    result = Comparison(out_dir, document, rows, verdicts, files)
    if log:
        from harness.tracking.comparison import log_comparison

        experiment = found.experiment or _experiment_of(found.records)
        result.mlflow = log_comparison(out_dir, found.name, experiment, rows)
    return result


def _protocol(found: Found, groups, rows, n_resamples: int, force: bool) -> dict:
    """How the gains were made comparable: the matching rule of the main table, the sweep that
    chose each arm's learning rate (every point), the secondary views and the count-based
    references of the held-out rows beside each arm's loss on them."""
    study = found.study
    held_out = {arm: float(np.mean([r.positions.rows[:, 2].mean() for r in runs]))
                for arm, runs in groups.items() if all(r.positions is not None for r in runs)}
    first = next(iter(groups.values()))[0]
    out = {"references": first.references, "held_out_loss": held_out, "sweep": None, "views": [],
           "matching": None}
    if study is None:
        return out
    rule = study.config.matching
    out["matching"] = {"rule": rule.rule, "tolerance": rule.tolerance, "views": list(study.views),
                       "text": VIEW_TEXT[rule.rule]}
    out["sweep"] = found.sweep.as_dict() if found.sweep else None
    lrs = found.sweep.chosen if found.sweep else None
    out["views"] = view_rows(study, lrs, groups, rows, found, n_resamples, allow_missing=force)
    return out


def seed_references(groups: dict[str, list[RunRecord]], study) -> dict[str, SeedReference]:
    """metric -> the seed SD of an arm's mean, for one-seed comparisons: measured by the first
    negative control on other seeds (pooled with its arm), else declared by the study."""
    declared = study.config.seed_sd if study is not None else {}
    out = {m: SeedReference(sd, None, "declared in the study (seed_sd)") for m, sd in declared.items()}
    for arm, runs in groups.items():
        control = runs[0].control_of
        if control is None or control not in groups or runs[0].schedule_fraction is not None:
            continue
        metrics = sorted(set(runs[0].metrics()) | set(runs[0].nll_metrics()) | {"val_loss"})
        for metric in metrics:
            mine, theirs = per_seed_means(runs, metric), per_seed_means(groups[control], metric)
            if mine is not None and theirs is not None:
                found = reference_from_control(mine, theirs, arm)
                if found is not None:
                    out[metric] = found
        break
    return out


VIEW_TEXT = {
    "tokens": "equal training tokens (the papers' rule); parameters and training FLOPs are reported, not matched",
    "flops": "equal training FLOPs (arms that cost more per token train on fewer tokens)",
    "params": "equal parameters and tokens (Meta's rule)",
}


def _experiment_of(records: list[RunRecord]) -> str:
    names = {r.recipe.get("track", {}).get("experiment", "mtp-harness") for r in records}
    return names.pop() if len(names) == 1 else "mtp-harness"


def _run_commit(record: RunRecord) -> str | None:
    """The commit a run was trained at (its provenance.json, kept in its record too)."""
    return (rundir.read_json(record.files.provenance, default={}).get("git", {}) or {}).get("commit")


def _document(found: Found, baseline: str, rows, verdicts, reported, problems) -> dict:
    from dataclasses import asdict

    return {
        "study": found.name, "baseline": baseline, "harness_version": __version__,
        "run_commits": sorted({c for r in found.records if (c := _run_commit(r))}),
        "data_manifest": found.records[0].manifest_hash if found.records else "",
        "not_comparable": problems, "methods": _methods(verdicts),
        "arms": [row.as_dict() for row in rows],
        "verdicts": [v.as_dict() for v in verdicts],
        "reported": [asdict(r) for r in reported],
        "not_entered": [asdict(n) for n in NOT_ENTERED],
        "probe_claims": [asdict(c) for c in PROBE_CLAIMS
                         if any(m.startswith(f"{c.probe}/") for row in rows for m in row.metrics)],
    }


def _methods(verdicts) -> dict[str, str]:
    """The methods notes; a study from a checkpoint gets its verdicts' note after the others'."""
    out = dict(METHODS)
    if any(v.claim in FINETUNE_CLAIMS for v in verdicts):
        out["verdicts"] = f"{out['verdicts']} {FINETUNE_METHOD}"
    return out


def _figures(groups, rows, curves, reported, plot_dir: Path) -> list[Path]:
    val = {arm: runs[0].val_curve() for arm, runs in groups.items()}  # first seed's curve per arm
    colors = plots.arm_colors(groups)
    return [*plots.metric_gains(rows, plot_dir), *plots.val_loss_curves(val, plot_dir),
            *plots.position_ratio(curves, colors, plot_dir), *plots.gains(rows, reported, plot_dir),
            *plots.acceptance(rows, colors, plot_dir),
            *plots.probe_gains(rows, plot_dir), *plots.polynomial_by_ops(groups, colors, plot_dir)]


def _write_texts(out_dir: Path, document: dict, rows, reported, verdicts) -> list[Path]:
    family = document.get("holm_family")
    md = [f"# MTP study {document['study']}: reproduced vs reported gains", "",
          f"Baseline **{document['baseline']}**. Δ = arm minus baseline with its 95% interval across seeds; * marks a "
          "gain that interval and the data-sampling one both put on one side of zero; pass@k and probe scores in "
          "percent.", ""]
    md += [f"**Compared with --force although** {p}" for p in document["not_comparable"]]
    md += ["## Verdicts at a glance", "", *(f"- {line}" for line in tables.headline_lines(verdicts)), "",
           f"Holm's adjustment runs over the {family} claim rows with a p-value (controls excluded); the full "
           "table is below." if family else "No claim row could be tested.", "",
           "## Gains over the baseline", "", tables.markdown_table(tables.GAIN_HEADERS, tables.gain_cells(rows)), "",
           document["methods"]["gains"], "",
           "## Arms", "", tables.matching_line(document), "", tables.markdown_table(*tables.arm_columns(rows)), ""]
    for title, headers, body, note in tables.protocol_sections(document, rows):
        md += [f"## {title}", "", tables.markdown_table(headers, body), "", note, ""]
    md += ["## Verdicts in full", "", tables.markdown_table(tables.verdict_headers(family), tables.verdict_cells(verdicts))
           if verdicts else "No verdicts: no MTP arm with the outputs they need.", "", document["methods"]["verdicts"], ""]
    if tables.code_benchmarks(rows):
        md += ["## Reported (published)", "", tables.markdown_table(tables.REPORTED_HEADERS, tables.reported_cells(reported)),
               "", *(f"- {line}" for line in tables.not_entered_lines()), ""]
    written = {"comparison.json": tables.to_json(document), "comparison.md": "\n".join(md),
               "comparison.csv": tables.to_csv(rows)}
    for name, text in written.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return [out_dir / name for name in written]
