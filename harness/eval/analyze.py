"""The analyses of a harness model beyond pass@k: per-position loss, head acceptance and
self-speculative decoding, on the run's own held-out data.

`analyze_export` is what `harness run`'s evaluate stage and `harness eval RUN_DIR` call.
`eval.per_position` and `eval.acceptance` switch the analyses; `eval.enabled` switches only
the code benchmarks, so a run can skip the slow HumanEval/MBPP and still get these. Outputs
go to the evaluation directory (formats in `position_loss` and here), and the returned
summary holds metrics under `position/`, `acceptance/` and `speculative/` (keys with a `/`
are numbers, logged to MLflow) plus facts without a `/`. Torch runs `eval.num_threads`
threads, 1 when unset: batch-1 decoding of a small model gains nothing from more, and on a
busy CPU extra threads only wait for cores (ENV-NOTES: ~20x slower generation).

acceptance.json (objectives with extra depths only, never STP):
  {"depths": {"2": {"agree_greedy", "correct", "n"}, ...},      definitions: `acceptance`
   "speculative": {"tokens_per_step", "speedup", "identical", "prompts", "new_tokens",
                   "plain_s", "speculative_s"},                 definitions: `speculative`
   "transformers": {"tokens_per_step", "identical", "prompts", "new_tokens", "speculative_s",
                    "architecture", "identity_layers"}}
                   transformers' generate(use_mtp=True) on the export's transformers_mtp/
                   directory, same prompts (DeepSeek D=1 only; definitions: `hf_mtp`)
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from harness.data.loader import TokenWindows
from harness.errors import HarnessError
from harness.eval.acceptance import depth_agreement
from harness.eval.config import EvalConfig
from harness.eval.position_loss import position_losses, write_position_files
from harness.eval.speculative import compare_decoders
from harness.model.model import MTPModel


@contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def held_out_rows(prepared, cfg: EvalConfig, seq_len: int, row_length: int, reserve: int) -> list[torch.Tensor]:
    """The loader's fixed validation windows (the same for every arm and run), as row batches."""
    windows = TokenWindows(prepared, "val", seq_len=seq_len, row_length=row_length, lookahead_reserve=reserve)
    return windows.val_batches(cfg.analysis_batches, cfg.analysis_batch_size)


def analyze(model: MTPModel, prepared, cfg: EvalConfig, out_dir: Path, *, seq_len: int, lookahead_reserve: int,
            title: str = "", export_dir: Path | None = None) -> dict:
    """Run the analyses cfg asks for on `model`; write their files to out_dir; return the summary."""
    out_dir, started = Path(out_dir), time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    with _threads(cfg.num_threads or 1):
        if cfg.per_position:
            rows = held_out_rows(prepared, cfg, seq_len, seq_len + 1, lookahead_reserve)
            summary.update(write_position_files(position_losses(model, rows), out_dir, title))
        n = model.objective_cfg.n_predict
        if cfg.acceptance and n > 1:
            rows = held_out_rows(prepared, cfg, seq_len, seq_len + n, lookahead_reserve)
            report = _acceptance(model, rows, cfg, seq_len, prepared.eos_id, export_dir)
            (out_dir / "acceptance.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            summary.update(_acceptance_metrics(report))
        summary["analysis_threads"] = torch.get_num_threads()
    summary["analysis_seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _acceptance(model: MTPModel, rows: list[torch.Tensor], cfg: EvalConfig, seq_len: int, eos_id: int,
                export_dir: Path | None) -> dict:  # fmt: skip
    prompts = decoding_prompts(rows, cfg.speculative_prompts, min(cfg.speculative_prompt_tokens, seq_len))
    report = {"depths": depth_agreement(model, rows, seq_len),
              "speculative": compare_decoders(model, prompts, cfg.speculative_max_new_tokens, eos_id)}  # fmt: skip
    if export_dir is not None:
        from harness.eval.hf_mtp import transformers_speculative

        theirs = transformers_speculative(export_dir, model, prompts, cfg.speculative_max_new_tokens, eos_id,
                                          timed=False)  # fmt: skip
        if theirs is not None:
            report["transformers"] = theirs
    return report


def decoding_prompts(rows: list[torch.Tensor], count: int, tokens: int) -> list[list[int]]:
    """The first tokens of the first held-out rows (the same prompts for every arm)."""
    return torch.cat(rows)[:count, :tokens].tolist()


def _acceptance_metrics(report: dict) -> dict:
    metrics = {}
    for k, rates in report["depths"].items():
        metrics[f"acceptance/depth_{k}/agree_greedy"] = rates["agree_greedy"]
        metrics[f"acceptance/depth_{k}/correct"] = rates["correct"]
    spec = report["speculative"]
    metrics["speculative/tokens_per_step"] = spec["tokens_per_step"]
    metrics["speculative/speedup"] = spec["speedup"]
    metrics["speculative_identical"] = spec["identical"]
    if "transformers" in report:
        theirs = report["transformers"]
        metrics["speculative/transformers_tokens_per_step"] = theirs["tokens_per_step"]
        metrics["speculative_transformers_identical"] = theirs["identical"]
    return metrics


def analyze_export(export_dir: Path, recipe, prepared, out_dir: Path) -> dict:
    """The analyses of an exported harness model (weights as exported, as evaluated)."""
    from harness.model.export import load_exported

    model = load_exported(export_dir)
    return analyze(model, prepared, recipe.eval, out_dir, seq_len=recipe.seq_len,
                   lookahead_reserve=recipe.data.lookahead_reserve, title=recipe.name, export_dir=export_dir)  # fmt: skip


def analyze_run_dir(run_dir: Path, out_dir: Path) -> dict:
    """`harness eval RUN_DIR`: the run's resolved recipe (its eval section's analysis
    settings) and data (a cache hit when the run's data cache is still there, else prepared
    again, identically). The keys found are merged into out_dir/summary.json, keeping the
    code benchmarks' keys there."""
    from harness.data.prepare import prepare_data
    from harness.recipe import load_recipe

    run_dir = Path(run_dir)
    if not is_harness_run(run_dir):
        raise HarnessError(
            f"{run_dir}: per-position loss and acceptance need a harness run directory (recipe.yaml, export/)",
            fix="pass a directory made by `harness run`, or --no-analysis for a plain Hugging Face model",
        )
    recipe = load_recipe(run_dir / "recipe.yaml")
    prepared = prepare_data(recipe.data, vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len,
                            base_dir=recipe_dir_of(run_dir))  # fmt: skip
    found = analyze_export(run_dir / "export", recipe, prepared, out_dir)
    path = Path(out_dir) / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    summary.update(found)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return found


def is_harness_run(path: Path) -> bool:
    """A run directory made by `harness run`: its resolved recipe and its full export."""
    return (path / "recipe.yaml").is_file() and (path / "export" / "mtp_config.json").is_file()


def recipe_dir_of(run_dir: Path) -> Path:
    """Where the recipe was (a local corpus path is relative to it), from provenance.json."""
    try:
        return Path(json.loads((run_dir / "provenance.json").read_text())["recipe_path"]).parent
    except (OSError, KeyError, ValueError):
        return run_dir
