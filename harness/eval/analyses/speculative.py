"""Self-speculative greedy decoding with the MTP heads, checked against plain greedy decoding.

One loop (`decode`) serves both: each step feeds the next-token path the greedy token found
last plus up to n-1 drafted tokens after it (`harness.model.decoding`), keeps the drafts the
path's own greedy choices agree with, and gains the path's choice after the last kept one.
So every emitted token is the next-token path's argmax given the tokens before it: the output
is plain greedy decoding's, token for token (up to floating-point differences between
scoring a block and scoring one position, which only matter at exact ties; the tests and
every benchmark assert equality). Plain greedy decoding is this loop without drafts.

Both decoders use the same machinery, KV-cached incremental forwards at batch size 1, so the
speed-up is the ratio of two equally optimised decoders, not of a cached one against an
uncached one. Accounting: a *step* is one forward of the next-token path (the prompt's
prefill included), so plain greedy decoding makes exactly one token per step and
`tokens_per_step` of the speculative decoder is new tokens / steps. Meta's drafts come from
the same forward; DeepSeek's modules add D small forwards per step (counted in the time,
not in the steps).

Published context (their figures, not ours): Gloeckle et al. 2024 Table S2, 7B model with
4 heads: 3.05x on code, 2.74x on Wikipedia with self-speculative decoding; DeepSeek-V3
Sec. 5.4.3: 85-90% acceptance of the second token, 1.8x tokens per second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from harness.model.decoding import decoding_path
from harness.model.mtp_model import MTPModel


@dataclass
class Decoded:
    tokens: list[int]  # the new tokens (an EOS that stopped decoding included)
    steps: int  # forwards of the next-token path, prefill included
    seconds: float


def _accepted(drafts: list[int], greedy: list[int]) -> int:
    """Leading drafts equal to the next-token path's greedy choice at their position."""
    n = 0
    while n < len(drafts) and drafts[n] == greedy[n]:
        n += 1
    return n


def _append(out: list[int], new: list[int], max_new_tokens: int, eos_id: int | None) -> bool:
    """Extend out with new up to an EOS or the budget; True when decoding is over."""
    for token in new:
        out.append(token)
        if token == eos_id or len(out) == max_new_tokens:
            return True
    return False


@torch.inference_mode()  # no autograd bookkeeping at all: both decoders run only forwards
def decode(model: MTPModel, prompt: list[int], max_new_tokens: int, eos_id: int | None = None,
           speculative: bool = False) -> Decoded:
    """Greedy continuation of `prompt`: at most max_new_tokens, stopping after eos_id."""
    if not prompt or max_new_tokens < 1:
        raise ValueError("decode needs a non-empty prompt and max_new_tokens >= 1")
    model.eval()
    started = time.perf_counter()
    # a block may reach n_predict positions past the last committed one
    path = decoding_path(model, len(prompt) + max_new_tokens + model.objective_cfg.n_predict, speculative)
    greedy = path.verify(list(prompt), last_only=True)
    path.commit(len(prompt))
    out, steps = [], 1
    done = _append(out, greedy, max_new_tokens, eos_id)
    while not done:
        drafts = path.draft(out[-1], min(path.n_draft, max_new_tokens - len(out) - 1))
        greedy = path.verify([out[-1], *drafts])
        steps += 1
        kept = _accepted(drafts, greedy)
        path.commit(1 + kept)
        done = _append(out, [*drafts[:kept], greedy[kept]], max_new_tokens, eos_id)
    return Decoded(out, steps, time.perf_counter() - started)


def compare_decoders(model: MTPModel, prompts: list[list[int]], max_new_tokens: int, eos_id: int | None) -> dict:
    """Plain and speculative greedy decoding of every prompt, alternating per prompt so that
    load changes hit both alike; after one untimed warm-up of each."""
    decode(model, prompts[0], 4, eos_id)
    decode(model, prompts[0], 4, eos_id, speculative=True)
    plain_s = spec_s = 0.0
    new_tokens = steps = 0
    identical = True
    per_prompt: dict[str, list[int]] = {"new_tokens": [], "steps": []}  # the units a comparison resamples
    for prompt in prompts:
        plain = decode(model, prompt, max_new_tokens, eos_id)
        spec = decode(model, prompt, max_new_tokens, eos_id, speculative=True)
        identical &= plain.tokens == spec.tokens
        plain_s, spec_s = plain_s + plain.seconds, spec_s + spec.seconds
        new_tokens, steps = new_tokens + len(spec.tokens), steps + spec.steps
        per_prompt["new_tokens"].append(len(spec.tokens))
        per_prompt["steps"].append(spec.steps)
    return {
        "per_prompt": per_prompt,
        "tokens_per_step": new_tokens / steps,
        "speedup": plain_s / spec_s,
        "identical": identical,
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "plain_s": round(plain_s, 6),
        "speculative_s": round(spec_s, 6),
    }
