"""Canonical-solution NLL: how likely a model finds each benchmark problem's reference solution
given the problem's own prompt, per problem.

pass@k of a model with a few million parameters is 0 on every HumanEval and MBPP problem,
so it cannot rank arms; the conditional likelihood of the canonical solution moves long
before a sample passes, and it is tied to the same problems and prompts. For each problem
the prompt is exactly the one the code benchmark uses (`prompts.benchmark_prompts`, equal
to lm-eval's context: HumanEval 0-shot, MBPP 3-shot with examples 2-4) and the continuation
is the canonical solution (HumanEval `canonical_solution`, MBPP `code`), split into tokens as lm-eval splits a context and its
continuation for loglikelihood requests (trailing whitespace of the context moves to the
continuation; the continuation's tokens are those of context+continuation after the
context's). Teacher-forced, next-token path only.

A prompt longer than the trained context is left-truncated so that prompt + solution fit in
the last `context` positions (counted per task); a solution that alone does not fit is left
out and counted. Per problem: nats per solution token and bits per solution byte (UTF-8),
so arms pair problem by problem in `harness compare`.

Rows (`eval/nll_<task>.jsonl`): task_id, prompt_tokens, kept_prompt_tokens, target_tokens,
target_bytes, nll_nats (sum over the solution), nats_per_token, bits_per_byte.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from harness import rundir
from harness.devices import device_of, to_device
from harness.errors import HarnessError
from harness.eval.benchmarks.prompts import benchmark_prompts


def encode_pair(tokenizer, prompt: str, solution: str) -> tuple[list[int], list[int]]:
    """lm-eval's split of a loglikelihood request into context and continuation tokens."""
    spaces = len(prompt) - len(prompt.rstrip())
    if spaces:
        prompt, solution = prompt[:-spaces], prompt[-spaces:] + solution
    whole = tokenizer.encode(prompt + solution, add_special_tokens=False).ids
    head = tokenizer.encode(prompt, add_special_tokens=False).ids
    return whole[: len(head)], whole[len(head):]


def _fit(prompt: list[int], target: list[int], context: int) -> list[int] | None:
    """The input window: the last `context` tokens of prompt+target minus the final target."""
    if not target or len(target) >= context:
        return None
    return (prompt + target)[-(context + 1):]


def solution_nll(model, tokenizer, pairs: list[tuple[object, str, str]], context: int, batch_size: int = 8) -> list[dict]:
    """One row per problem that fits (see the module docstring); sorted by length in batches
    (right padding cannot change earlier positions under a causal mask)."""
    import torch

    model.eval()
    items = []
    for task_id, prompt, solution in pairs:
        head, target = encode_pair(tokenizer, prompt, solution)
        window = _fit(head, target, context)
        row = {"task_id": task_id, "prompt_tokens": len(head), "target_tokens": len(target),
               "target_bytes": len(solution.encode("utf-8"))}
        items.append((row, window, len(target)))
    order = sorted((i for i, (_, w, _) in enumerate(items) if w is not None), key=lambda i: len(items[i][1]))
    for start in range(0, len(order), batch_size):
        chunk = [items[i] for i in order[start:start + batch_size]]
        width = max(len(w) for _, w, _ in chunk) - 1
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, (_, window, _) in enumerate(chunk):
            ids[j, : len(window) - 1] = torch.tensor(window[:-1])
        with torch.no_grad():
            logits = model.next_token_logits(to_device(ids, device_of(model)))
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()  # (B, T, V)
        for j, (row, window, n_target) in enumerate(chunk):
            end = len(window) - 1
            targets = torch.tensor(window[-n_target:])
            nll = -logp[j, end - n_target : end].gather(1, targets[:, None]).sum().item()
            row.update(kept_prompt_tokens=len(window) - n_target, nll_nats=nll, nats_per_token=nll / n_target,
                       bits_per_byte=nll / math.log(2) / max(1, row["target_bytes"]))
    return [row for row, window, _ in items if window is not None]


def summarize(task: str, rows: list[dict], total: int) -> dict:
    """Token- and byte-weighted means (metrics, keys with `/`) and what was truncated or left out."""
    nats = sum(r["nll_nats"] for r in rows)
    return {
        f"nll/{task}/nats_per_token": nats / max(1, sum(r["target_tokens"] for r in rows)),
        f"nll/{task}/bits_per_byte": nats / math.log(2) / max(1, sum(r["target_bytes"] for r in rows)),
        f"nll/{task}/problems": len(rows),
        f"nll/{task}/prompts_truncated": sum(r["kept_prompt_tokens"] < r["prompt_tokens"] for r in rows),
        f"nll/{task}/left_out": total - len(rows),
    }


def write_nll(model, tokenizer_file: Path, tasks: list[str], context: int, out_dir: Path) -> dict:
    """Score every task; write `nll_<task>.jsonl`; return the summary metrics."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    summary = {}
    for task in tasks:
        pairs = benchmark_prompts(task)
        rows = solution_nll(model, tokenizer, pairs, context)
        with open(Path(out_dir) / rundir.nll_name(task), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        summary.update(summarize(task, rows, len(pairs)))
    return summary


def per_problem(path: Path, field: str = "bits_per_byte") -> dict | None:
    """task_id -> the field, from a run's `nll_<task>.jsonl` (None when it was not scored)."""
    if not path.exists():
        return None
    rows = rundir.read_jsonl(path, fields=("task_id", field))
    try:
        return {r["task_id"]: float(r[field]) for r in rows if np.isfinite(float(r[field]))}
    except (TypeError, ValueError):
        raise HarnessError(f"{path}: a {field} is not a number",
                           fix="redo the evaluation (`harness run RECIPE --force evaluate`)") from None
