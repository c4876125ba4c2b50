"""transformers' own MTP drafting on a DeepSeek-style export, beside the harness's decoder.

`generate(..., use_mtp=True)` (transformers 5.x assisted decoding with `MTPCandidateGenerator`)
loads the export's MTP module (`<export>/transformers_mtp/`, `harness.model.export_mtp`) and
drafts with it at batch 1. Accounting as in `harness.eval.speculative`: a step is one forward
of the main model (counted with a hook, prefill included), so plain greedy decoding makes one
token per step. `identical` checks three outputs token for token: transformers with and
without drafting, and the harness's own greedy decoding of the same prompt.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from harness.model.export_mtp import read_info


def _generate(hf, prompt: list[int], max_new_tokens: int, eos_id: int | None, calls: list, **kwargs):
    calls.clear()
    started = time.perf_counter()
    ids = torch.tensor([prompt])
    out = hf.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_id,
                      pad_token_id=eos_id, **kwargs)  # fmt: skip
    return out[0, len(prompt) :].tolist(), len(calls), time.perf_counter() - started


@torch.inference_mode()
def transformers_speculative(export_dir: Path, model, prompts: list[list[int]], max_new_tokens: int,
                             eos_id: int | None) -> dict | None:  # fmt: skip
    """tokens per step, speed-up and identity of transformers' MTP drafting; None without an export for it."""
    from transformers import AutoModelForCausalLM

    from harness.eval.speculative import decode

    info = read_info(export_dir)
    if not info.get("written"):
        return None
    hf = AutoModelForCausalLM.from_pretrained(str(Path(export_dir) / info["dir"]), dtype=torch.float32).eval()
    calls: list = []
    hf.register_forward_hook(lambda *_: calls.append(1))
    _generate(hf, prompts[0], 4, eos_id, calls)  # untimed warm-up of both paths
    _generate(hf, prompts[0], 4, eos_id, calls, use_mtp=True)
    plain_s = spec_s = 0.0
    new_tokens = steps = 0
    identical = True
    for prompt in prompts:
        plain, _, seconds = _generate(hf, prompt, max_new_tokens, eos_id, calls)
        plain_s += seconds
        drafted, n_steps, seconds = _generate(hf, prompt, max_new_tokens, eos_id, calls, use_mtp=True)
        spec_s, steps, new_tokens = spec_s + seconds, steps + n_steps, new_tokens + len(drafted)
        identical &= plain == drafted == decode(model, prompt, max_new_tokens, eos_id).tokens
    return {
        "tokens_per_step": new_tokens / steps,
        "speedup": plain_s / spec_s,
        "identical": identical,
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "plain_s": round(plain_s, 6),
        "speculative_s": round(spec_s, 6),
        "architecture": info["architecture"],
        "identity_layers": info["identity_layers"],
    }
