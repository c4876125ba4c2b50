"""Polynomial exact match (Gloeckle et al. 2024, Sec. 4.2): greedy generation of the answer's
coefficients after "=", scored exactly, by number of operations, in and out of distribution.

Each prompt is [EOS] + the question's tokens (ending at "="); the next-token path generates
exactly as many tokens as the answer has coefficients, greedily (argmax, first index on
ties), with no stop rule: the answer's length is fixed. Prompts of equal length are batched
together, so no padding ever enters a prediction.

One row per test expression (`polynomial_greedy.jsonl`):
  task_id ("m03-00042"), ops (m), ood (m > train_max_ops), question, answer (target),
  completion (generated), correct (exact match), coefficients_correct (how many of the d
  coefficients match, position by position), status "passed"/"failed" and sample 0 (as pass@1)
"""

from __future__ import annotations

from collections import defaultdict

import torch

from harness.errors import HarnessError


def _prompt(tokenizer, question: str, eos_id: int) -> list[int]:
    ids = tokenizer.encode(question, add_special_tokens=False).ids
    if len(ids) != len(question.split(" ")) or tokenizer.token_to_id("<unk>") in ids:
        raise HarnessError(
            "the run's tokenizer does not give one known token per symbol of the polynomial test expressions",
            fix="prepare the data with data.tokenizer.kind: vocabulary (the probe recipes do)",
        )
    return [eos_id, *ids]


@torch.no_grad()
def greedy(model, prompts: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, steps) greedy continuation of equal-length prompts (B, T)."""
    x = prompts
    for _ in range(steps):
        nxt = model.next_token_logits(x)[:, -1].argmax(dim=-1, keepdim=True)
        x = torch.cat([x, nxt], dim=1)
    return x[:, prompts.shape[1] :]


def score_expressions(model, tokenizer, examples: list[dict], eos_id: int, batch_size: int) -> list[dict]:
    """One row per test expression, in the test file's order."""
    model.eval()
    prompts = [_prompt(tokenizer, e["question"], eos_id) for e in examples]
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, ids in enumerate(prompts):
        by_length[len(ids)].append(index)
    completions: dict[int, list[str]] = {}
    for length in sorted(by_length):
        indices = by_length[length]
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            steps = len(examples[chunk[0]]["answer"].split(" "))
            out = greedy(model, torch.tensor([prompts[i] for i in chunk]), steps)
            for i, row in zip(chunk, out.tolist()):
                completions[i] = [tokenizer.id_to_token(t) for t in row]
    return [_row(e, completions[i]) for i, e in enumerate(examples)]


def _row(example: dict, completion: list[str]) -> dict:
    answer = example["answer"].split(" ")
    matches = sum(a == c for a, c in zip(answer, completion))
    correct = matches == len(answer)
    return {"task_id": example["task_id"], "ops": example["ops"], "ood": example["ood"],
            "question": example["question"], "answer": example["answer"], "completion": " ".join(completion),
            "correct": correct, "coefficients_correct": matches, "status": "passed" if correct else "failed",
            "sample": 0}


def summarize(rows: list[dict], probe: dict) -> dict:
    d = probe["coefficients"]

    def rates(subset: list[dict], suffix: str) -> dict:
        if not subset:
            return {}
        return {f"polynomial/exact_match{suffix}": sum(r["correct"] for r in subset) / len(subset),
                f"polynomial/coefficient_accuracy{suffix}": sum(r["coefficients_correct"] for r in subset) / (d * len(subset))}

    summary = {**rates(rows, ""), **rates([r for r in rows if not r["ood"]], "_id"),
               **rates([r for r in rows if r["ood"]], "_ood")}
    for m in sorted({r["ops"] for r in rows}):
        summary.update(rates([r for r in rows if r["ops"] == m], f"_m{m:02d}"))
    summary.update({"polynomial/chance": probe["chance_exact_match"], "polynomial/expressions": len(rows),
                    "polynomial/train_max_ops": probe["settings"]["train_max_ops"]})
    return summary
