"""Do the benchmark prompts fit the context the model is trained on? Checked at `harness plan`.

A model trained on windows of S tokens has never seen position S; a prompt longer than S
minus the tokens to generate must be cut (evaluation left-truncates it and counts it), so
its score says little. `harness plan` says how many prompts of each task will not fit,
before anything is trained. The count needs the recipe's tokenizer: it is read from the data
cache when the data have been prepared (torch-free, a fraction of a second); otherwise the
check says it has not been made.
"""

from __future__ import annotations

from pathlib import Path

from harness.eval.benchmarks.prompts import benchmark_prompts

# lm-eval's own generation budgets when eval.max_gen_toks is unset (tasks/harness_*.yaml).
DEFAULT_GEN_TOKENS = {"humaneval": 1024, "mbpp": 256}


def cached_tokenizer(recipe, base_dir: Path) -> Path | None:
    """tokenizer.json of the recipe's prepared data, if the data cache already holds it."""
    from harness.data.prepare import _key_inputs, default_cache_root
    from harness.data.sources import open_source
    from harness.hashing import sha256_json

    try:
        source = open_source(recipe.data, Path(base_dir))
        key = sha256_json(_key_inputs(recipe.data, source.identity(), recipe.model.vocab_size, Path(base_dir)))[:24]
    except Exception:  # noqa: BLE001 -- a source that cannot be read yet is reported by `harness run`
        return None
    path = default_cache_root() / "data" / key / "tokenizer" / "tokenizer.json"
    return path if path.is_file() else None


def _context_field(recipe) -> str:
    """The field that sets the trained context: data.seq_len when the recipe sets it (it may not
    exceed model.seq_len), else model.seq_len."""
    return "data.seq_len" if recipe.data.seq_len is not None else "model.seq_len"


def prompt_fit(recipe, base_dir: Path) -> list[str]:
    """One line per benchmark task the recipe evaluates: how many prompts do not fit."""
    tasks = [t for t in recipe.eval.tasks if t in DEFAULT_GEN_TOKENS]
    if not tasks or not (recipe.eval.enabled or recipe.eval.canonical_nll):
        return []
    path = cached_tokenizer(recipe, base_dir)
    if path is None:
        return [f"eval prompts against the trained context S={recipe.seq_len}: not checked yet (no tokenizer; "
                "`harness data prepare RECIPE` builds it)"]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    S, lines = recipe.seq_len, []
    for task in tasks:
        gen = recipe.eval.max_gen_toks or DEFAULT_GEN_TOKENS[task]
        lengths = [len(tokenizer.encode(p, add_special_tokens=False).ids) for _, p, _ in benchmark_prompts(task)]
        over = sum(n + gen > S for n in lengths)
        if over:
            lines.append(f"warning: {over} of {len(lengths)} {task} prompts (longest {max(lengths)} tokens) do not fit "
                         f"the trained context S={S} with {gen} generated tokens; evaluation left-truncates them "
                         f"and counts them (raise {_context_field(recipe)}, or lower eval.max_gen_toks)")
        else:
            lines.append(f"{task}: every prompt fits S={S} with {gen} generated tokens (longest {max(lengths)})")
    return lines
