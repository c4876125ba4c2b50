"""transformers' own MTP drafting on a DeepSeek-style export, beside the harness's decoder.

`generate(..., use_mtp=True)` (transformers 5.x assisted decoding with `MTPCandidateGenerator`)
loads the export's MTP module (`<export>/transformers_mtp/`, `harness.model.export_mtp`) and
drafts with it at batch 1. Accounting as in `harness.eval.analyses.speculative`: a step is one forward
of the main model (counted with a hook, prefill included), so plain greedy decoding makes one
token per step. `identical` checks transformers' drafted output against the harness's own
greedy decoding of the same prompt, token for token, and with `timed` also against
transformers' plain greedy `generate`, whose time gives a speed-up. That speed-up says little
about the method here: the export's identity padding layers make the verifying model heavier
than ours (`harness.model.export_mtp`), so the evaluate stage skips it (`timed=False`, half the
time) and `benchmarks/bench_speculative.py` reports it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from harness.devices import device_of
from harness.model.export_mtp import read_info


def _generate(hf, prompt: list[int], max_new_tokens: int, eos_id: int | None, calls: list, **kwargs):
    calls.clear()
    started = time.perf_counter()
    ids = torch.tensor([prompt], device=hf.device)
    out = hf.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_id,
                      pad_token_id=eos_id, **kwargs)  # fmt: skip
    return out[0, len(prompt) :].tolist(), len(calls), time.perf_counter() - started


@torch.inference_mode()
def transformers_speculative(export_dir: Path, model, prompts: list[list[int]], max_new_tokens: int,
                             eos_id: int | None, timed: bool = True) -> dict | None:  # fmt: skip
    """tokens per step, identity (and with `timed` the speed-up) of transformers' MTP drafting;
    None when the export has no directory for it."""
    from transformers import AutoModelForCausalLM

    from harness.eval.analyses.speculative import decode

    info = read_info(export_dir)
    if not info.get("written"):
        return None
    hf = AutoModelForCausalLM.from_pretrained(str(Path(export_dir) / info["dir"]), dtype=torch.float32).eval()
    hf = hf.to(device_of(model))  # beside ours: the same device, the same fp32
    calls: list = []
    hf.register_forward_hook(lambda *_: calls.append(1))
    if timed:  # untimed warm-up of both paths
        _generate(hf, prompts[0], 4, eos_id, calls)
        _generate(hf, prompts[0], 4, eos_id, calls, use_mtp=True)
    plain_s = spec_s = 0.0
    new_tokens = steps = 0
    identical = True
    for prompt in prompts:
        ours = decode(model, prompt, max_new_tokens, eos_id).tokens
        if timed:
            plain, _, seconds = _generate(hf, prompt, max_new_tokens, eos_id, calls)
            plain_s, identical = plain_s + seconds, identical and plain == ours
        drafted, n_steps, seconds = _generate(hf, prompt, max_new_tokens, eos_id, calls, use_mtp=True)
        spec_s, steps, new_tokens = spec_s + seconds, steps + n_steps, new_tokens + len(drafted)
        identical &= drafted == ours
    report = {"tokens_per_step": new_tokens / steps, "identical": identical, "prompts": len(prompts),
              "new_tokens": new_tokens, "speculative_s": round(spec_s, 6), "architecture": info["architecture"],
              "identity_layers": info["identity_layers"]}  # fmt: skip
    if timed:
        report.update(speedup=plain_s / spec_s, plain_s=round(plain_s, 6))
    return report
