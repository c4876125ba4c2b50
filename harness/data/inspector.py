"""What `harness data prepare` and `harness data inspect` show: the manifest summary with the
decontamination counts, and the decoded rows of one training step (as OLMo's batch
inspector prints them), so a reader can see exactly what a run trains on."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.data.loader import recipe_windows
from harness.data.prepare import PreparedData, prepare_data

_DROPPED_SHOWN = 10


def prepare_recipe(recipe, recipe_path: str | Path, console: Console | None = None, *,
                   verify: bool = False, relative_to: str | Path | None = None) -> PreparedData:
    """prepare_data with the recipe's settings; relative data paths start at the recipe's
    folder, or at `relative_to` (a Slurm job's copy of a recipe names the original's, as
    `harness run --relative-to` does, so both find the same cache entry)."""
    base = Path(relative_to) if relative_to is not None else Path(recipe_path).resolve().parent
    return prepare_data(
        recipe.data, vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len,
        base_dir=base, console=console, verify=verify,
    )


def print_summary(recipe, prepared: PreparedData, console: Console) -> None:
    m = prepared.manifest
    train, val = recipe_windows(recipe, prepared, "train"), recipe_windows(recipe, prepared, "val")
    train.check_global_batch(recipe.train.global_batch_size)
    source = json.loads((prepared.path / "source.json").read_text())
    table = Table(title=f"data for {recipe.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    where = f"python {source['python']}, {len(source['files'])} files" if m["source"]["kind"] == "stdlib" else ""
    table.add_row("cache", str(prepared.path))
    table.add_row("manifest sha256", prepared.manifest_hash)
    table.add_row("source", f"{m['source']['kind']} {where}; {m['source']['documents']} documents, "
                  f"{m['source']['skipped_non_utf8']} skipped (not UTF-8), {m['source']['skipped_empty']} empty; "
                  f"sha256 {m['source']['hash'][:12]}")
    d = m["decontamination"]
    dropped = d.get("documents_dropped", 0)
    by = ", ".join(f"{k} {v}" for k, v in d.get("dropped_by_benchmark", {}).items()) or "none"
    table.add_row("decontamination", f"{d.get('ngram')}-grams vs {', '.join(d.get('benchmarks', []))}: "
                  f"{dropped} of {d.get('documents_checked', 0)} documents dropped (by benchmark: {by})"
                  if d["enabled"] else "off")
    t = m["tokenizer"]
    table.add_row("tokenizer", f"{t['kind']}, {t['vocab_size']} tokens, EOS {t['eos_token']!r} = {t['eos_id']}, "
                  f"sha256 {t['hash'][:12]}")
    for name, split in m["splits"].items():
        table.add_row(name, f"{split['documents']} documents, {split['tokens']:,} tokens ({m['dtype']}) "
                      f"in {len(split['shards'])} shard(s)")
    per_epoch = train.n_windows
    epochs = recipe.steps * recipe.train.global_batch_size / per_epoch
    table.add_row("this recipe", f"S={recipe.seq_len}, rows of {train.row_length} tokens; {per_epoch:,} train windows "
                  f"per epoch, {val.n_windows:,} val; {recipe.steps} steps x {recipe.train.global_batch_size} "
                  f"rows = {epochs:.2f} epochs")
    console.print(table)
    for item in prepared.decontamination.get("dropped", [])[:_DROPPED_SHOWN]:
        console.print(Text(f"  dropped {item['document']}: {', '.join(item['tasks'])}"
                           f"{' ...' if item['n_tasks'] > len(item['tasks']) else ''} (shares: {item['example']!r})"))
    if dropped > _DROPPED_SHOWN:
        console.print(f"  ... {dropped - _DROPPED_SHOWN} more in {prepared.path / 'decontamination.json'}")


def print_step(recipe, prepared: PreparedData, step: int, rank: int, world_size: int, console: Console,
               max_chars: int | None = None) -> None:
    """Each row of rank's slice of the step's global batch, decoded: inputs, then extra targets."""
    windows = recipe_windows(recipe, prepared)
    gbs, seed = recipe.train.global_batch_size, recipe.train.seed
    chosen = windows.windows_at(step, gbs, seed, rank, world_size)
    rows = windows.rows(chosen)
    tokenizer = prepared.load_tokenizer()
    local = gbs // world_size
    console.print(f"step {step}, rank {rank} of {world_size}: rows {rank * local}..{rank * local + local - 1} of the "
                  f"global batch of {gbs} (seed {seed}, {windows.n_windows} windows per epoch, "
                  f"epoch {step * gbs // windows.n_windows})", soft_wrap=True)
    for i, (window, row) in enumerate(zip(chosen.tolist(), rows)):
        text = tokenizer.decode(row[: recipe.seq_len].tolist(), skip_special_tokens=False)
        extra = tokenizer.decode(row[recipe.seq_len :].tolist(), skip_special_tokens=False)
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars] + " [...]"
        console.rule(f"row {rank * local + i}: window {window} (tokens {window * recipe.seq_len}..)")
        console.print(Text(text))
        console.print(Text(f"[+{len(row) - recipe.seq_len} target tokens: {extra!r}]", style="dim"))
