"""The analyses of a harness model beyond pass@k, on the run's own held-out data: per-position
loss (and along training), canonical-solution NLL, count-based reference losses, head
acceptance and self-speculative decoding.

`analyze_export` is what `harness run`'s evaluate stage and `harness eval RUN_DIR` call.
`eval.per_position`, `eval.trajectory`, `eval.canonical_nll` and `eval.acceptance` switch the
analyses; `eval.enabled` switches only the code benchmarks' generation, so a run can skip the
slow HumanEval/MBPP sampling and still get these. The held-out rows are one per validation
document (`heldout.py`), the same for every arm. Outputs go to the evaluation directory
(formats in each module and here), and the returned summary holds metrics under
`reference/`, `position/`, `nll/`, `acceptance/` and `speculative/` (keys with a `/` are
numbers, logged to MLflow) plus facts without a `/`. Torch runs `eval.num_threads` threads,
1 when unset: batch-1 decoding of a small model gains nothing from more, and on a busy CPU
extra threads only wait for cores (docs/MEASURED.md: ~20x slower generation).

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
from pathlib import Path

import torch

from harness import rundir
from harness.atomic import atomic_write_text
from harness.devices import device_of
from harness.errors import HarnessError
from harness.eval.analyses.acceptance import depth_agreement
from harness.eval.analyses.canonical_nll import write_nll
from harness.eval.analyses.heldout import document_rows
from harness.eval.analyses.position_loss import position_losses, write_position_files
from harness.eval.analyses.reference_losses import reference_losses
from harness.eval.analyses.speculative import compare_decoders
from harness.eval.analyses.trajectory import trajectory, write_trajectory
from harness.eval.config import EvalConfig
from harness.hashing import sha256_json, sha256_parts
from harness.model.mtp_model import MTPModel
from harness.rundir import RunDir
from harness.threads import torch_threads


def held_out_rows(prepared, cfg: EvalConfig, length: int) -> list[torch.Tensor]:
    """One row of `length` tokens per validation document, from its first token (the same
    rows for every arm and run; `heldout.document_rows`), in batches."""
    rows, _ = document_rows(prepared, length, cfg.analysis_batches * cfg.analysis_batch_size)
    tensor = torch.from_numpy(rows)
    return list(tensor.split(cfg.analysis_batch_size))


def analyze(model: MTPModel, prepared, cfg: EvalConfig, out_dir: Path, *, seq_len: int, title: str = "",
            export_dir: Path | None = None, run_dir: Path | None = None, recipe=None) -> dict:
    """Run the analyses cfg asks for on `model`; write their files to out_dir; return the summary.
    The count-based reference losses of the held-out rows are always computed (cheap, cached),
    so every run can be checked for collapse."""
    out_dir, started = Path(out_dir), time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    with torch_threads(cfg.num_threads or 1):
        try:
            rows = held_out_rows(prepared, cfg, seq_len + 1)
        except HarnessError:
            # Corpora of short documents (the probes' generated examples) have no full-window
            # rows: without per-position analyses there is nothing to compute them for, and the
            # collapse check then goes without the unigram reference (it still compares depths).
            if cfg.per_position or cfg.trajectory:
                raise
            rows = None
        if rows is not None:
            summary.update({f"reference/{k}": v for k, v in cached_references(prepared, torch.cat(rows).numpy()).items()})
        final = None
        if cfg.per_position:
            final = position_losses(model, rows)
            summary.update(write_position_files(final, out_dir, title))
            summary["position/documents"] = int(len(final))
        if cfg.trajectory and run_dir is not None:
            found = trajectory(run_dir, recipe, rows, position_losses, final, device=device_of(model))
            summary.update(write_trajectory(found, out_dir))
        if cfg.canonical_nll and export_dir is not None:
            summary.update(write_nll(model, Path(export_dir) / "tokenizer.json", list(cfg.tasks), seq_len, out_dir))
        n = model.objective_cfg.n_predict
        if cfg.acceptance and n > 1:
            rows = held_out_rows(prepared, cfg, seq_len + n)
            report = _acceptance(model, rows, cfg, seq_len, prepared.eos_id, export_dir)
            rundir.write_json(out_dir / rundir.ACCEPTANCE, report)
            summary.update(_acceptance_metrics(report))
        summary["analysis_threads"] = torch.get_num_threads()
    summary["analysis_seconds"] = round(time.perf_counter() - started, 2)
    return summary


def cached_references(prepared, rows) -> dict[str, float]:
    """`reference_losses` of these rows, kept beside the prepared data (counting the training
    split takes seconds; every run of a study shares the data and the rows)."""
    key = sha256_parts(prepared.manifest_hash, rows.shape, sha256_json(rows.ravel().tolist()))[:16]
    path = Path(prepared.path) / "references" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    found = reference_losses(prepared, rows)
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, json.dumps(found, sort_keys=True))
    return found


def _acceptance(model: MTPModel, rows: list[torch.Tensor], cfg: EvalConfig, seq_len: int, eos_id: int,
                export_dir: Path | None) -> dict:  # fmt: skip
    prompts = decoding_prompts(rows, cfg.speculative_prompts, min(cfg.speculative_prompt_tokens, seq_len))
    report = {"depths": depth_agreement(model, rows, seq_len),
              "speculative": compare_decoders(model, prompts, cfg.speculative_max_new_tokens, eos_id)}  # fmt: skip
    if export_dir is not None:
        from harness.eval.analyses.hf_mtp import transformers_speculative

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


def analyze_export(export_dir: Path, recipe, prepared, out_dir: Path, run_dir: Path | None = None,
                   device: str = "cpu") -> dict:
    """The analyses of an exported harness model (weights as exported, as evaluated); with
    the run directory, also of its kept checkpoints (`eval.trajectory`). On `device` in fp32:
    a GPU makes them fast, and bf16 would flip near-tied greedy tokens between the batched
    and the one-token paths that the speculative checks compare for identity."""
    from harness.model.export import load_exported

    model = load_exported(export_dir).to(device)
    return analyze(model, prepared, recipe.eval, out_dir, seq_len=recipe.seq_len, title=recipe.name,
                   export_dir=export_dir, run_dir=run_dir, recipe=recipe)  # fmt: skip


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
            f"{run_dir}: per-position loss and acceptance need a harness run directory ({rundir.RECIPE}, {rundir.EXPORT}/)",
            fix="pass a directory made by `harness run`, or --no-analysis for a plain Hugging Face model",
        )
    files = RunDir(run_dir)
    recipe = load_recipe(files.recipe, base_dir=recipe_dir_of(run_dir))
    prepared = prepare_data(recipe.data, vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len,
                            base_dir=recipe_dir_of(run_dir))  # fmt: skip
    found = analyze_export(files.export, recipe, prepared, out_dir, run_dir)
    path = Path(out_dir) / rundir.SUMMARY
    rundir.write_json(path, {**rundir.read_json(path, default={}), **found})
    return found


def is_harness_run(path: Path) -> bool:
    """A run directory made by `harness run`: its resolved recipe and its full export."""
    return (path / rundir.RECIPE).is_file() and (path / rundir.EXPORT / "mtp_config.json").is_file()


def recipe_dir_of(run_dir: Path) -> Path:
    """Where the recipe was (a local corpus path is relative to it), from provenance.json."""
    try:
        return Path(rundir.read_json(run_dir / rundir.PROVENANCE)["recipe_path"]).parent
    except (OSError, KeyError, TypeError, HarnessError):
        return run_dir
