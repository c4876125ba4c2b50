"""Induction accuracy (Gloeckle et al. 2024, Sec. 4.1): at every repeated mention of a two-token
name in a held-out story, does the next-token path predict the name's second token?

Teacher-forced, like `position_loss`: each test story (after an EOS, as training documents
start) goes through the model once, and at the position of each repeated name's first token
the argmax of the next-token logits is compared with the second token, so one prediction per
scored mention, the greedy choice given the true prefix. Stories are batched, padded at the
end (the causal mask keeps padding out of every scored position). A story longer than the
context scores only the mentions inside it; the count is reported.

One row per scored mention (`<task>_<variant>.jsonl` like pass@k, variant "greedy"):
  task_id     "<story>/<position>": the same mention for every arm, the unit of pairing
  story       the story id (the cluster for a story-level bootstrap)
  name, mention, candidates   the name, its mention number (2 = first repeat), the number of
              distinct two-token names the story had mentioned so far (1/this = copying a
              random earlier second syllable)
  predicted, target   the token strings; correct (bool); status "passed"/"failed" (as pass@1);
  logprob     log p(target) in nats
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.errors import HarnessError


def encode_story(tokenizer, text: str, eos_id: int) -> list[int]:
    """[EOS] + one id per word; refuses a tokenizer that does not map words to tokens 1:1."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    words = text.split(" ")
    unk = tokenizer.token_to_id("<unk>")
    if len(ids) != len(words) or (unk is not None and unk in ids):
        raise HarnessError(
            "the run's tokenizer does not give one known token per word of the induction test stories",
            fix="prepare the data with data.tokenizer.kind: vocabulary (the probe recipes do)",
        )
    return [eos_id, *ids]


@torch.no_grad()
def score_stories(model, tokenizer, stories: list[dict], eos_id: int, max_len: int, batch_size: int) -> list[dict]:
    """One row per repeated two-token mention inside the first max_len input positions."""
    model.eval()
    out: list[dict] = []
    for start in range(0, len(stories), batch_size):
        chunk = stories[start : start + batch_size]
        encoded = [encode_story(tokenizer, s["text"], eos_id) for s in chunk]
        inputs = [ids[:-1][:max_len] for ids in encoded]  # position q predicts token q+1
        width = max(len(x) for x in inputs)
        batch = torch.full((len(inputs), width), eos_id, dtype=torch.long)
        for i, x in enumerate(inputs):
            batch[i, : len(x)] = torch.tensor(x)
        logprobs = F.log_softmax(model.next_token_logits(batch).float(), dim=-1)  # (B, T, V)
        for story, ids, x, lp in zip(chunk, encoded, inputs, logprobs):
            out.extend(_rows(story, ids, len(x), lp, tokenizer))
    return out


def _rows(story: dict, ids: list[int], length: int, logprobs: torch.Tensor, tokenizer) -> list[dict]:
    rows = []
    for target in story["targets"]:
        q = target["position"]  # word index of the second token = its sequence index - 1 (EOS first)
        if q >= length:
            continue
        predicted, gold = int(logprobs[q].argmax()), ids[q + 1]
        rows.append({"task_id": f"{story['task_id']}/{target['position']}", "story": story["task_id"],
                     "name": target["name"], "mention": target["mention"], "candidates": target["candidates"],
                     "predicted": tokenizer.id_to_token(predicted), "target": tokenizer.id_to_token(gold),
                     "correct": predicted == gold, "status": "passed" if predicted == gold else "failed",
                     "sample": 0, "logprob": round(float(logprobs[q, gold]), 6)})
    return rows


def summarize(rows: list[dict], stories: list[dict], probe: dict) -> dict:
    scored = sum(len(s["targets"]) for s in stories)
    if not rows:
        raise HarnessError("no repeated name fits the evaluation context", fix="raise model.seq_len or shorten the stories")
    first = [r for r in rows if r["mention"] == 2]
    return {
        "induction/accuracy": sum(r["correct"] for r in rows) / len(rows),
        "induction/accuracy_first_repeat": sum(r["correct"] for r in first) / max(len(first), 1),
        "induction/mean_logprob": sum(r["logprob"] for r in rows) / len(rows),
        "induction/chance": probe["chance_second_token"],
        "induction/copy_baseline": sum(1 / r["candidates"] for r in rows) / len(rows),
        "induction/targets": len(rows),
        "induction/targets_beyond_context": scored - len(rows),
        "induction/stories": len(stories),
    }
