"""Where the evaluate stage's time goes: timers wrapped around the functions each phase runs.

A profiler (cProfile) found the phases; these timers measure them without its overhead,
which inflates Python-heavy parts (stop checks, tokenizer calls) far more than the forward.
Phases, by the functions timed (nested ones are subtracted from their callers):
  load         harness.eval.benchmarks.lmeval.load_model (weights, tokenizer)
  encode       HFLM.tok_encode / tok_batch_encode (lm-eval encodes each prompt twice: to sort, to batch)
  prefill      the model's forward on a prompt batch (input longer than one token)
  decode step  the model's forward on one new token per row
  stops        stop-sequence checks (lm-eval's MultiTokenEOSCriteria, or harness RowStops)
  generate     the rest of transformers' generate loop (cache, masks, argmax, bookkeeping)
  detokenize   HFLM.tok_decode and the cut at stop sequences
  sandbox      running the completions (harness.eval.benchmarks.lmeval.execute_responses)
  lm-eval      everything else: task building, environment info, metrics, writing files
Batch padding is counted rather than timed: prompt pad tokens, and row-steps a batch spent
on rows that had already stopped (the forward runs on the whole batch until it ends).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager

PHASES = ("load", "encode", "prefill", "decode step", "stops", "generate", "detokenize", "sandbox", "lm-eval")


class Phases:
    """Accumulated seconds per phase and the padding counts of one evaluate run."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def timed(self, phase: str, fn, inner: tuple[str, ...] = ()):
        """fn, adding its wall time to `phase` minus what `inner` phases took meanwhile."""

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            before = sum(self.seconds[p] for p in inner)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds[phase] += elapsed - (sum(self.seconds[p] for p in inner) - before)

        return wrapper

    def split(self, total: float) -> dict[str, float]:
        """Seconds per phase of a run that took `total` seconds with these timers; the
        benchmark's own accounting (padding counts) is left out of every phase."""
        timed = {phase: self.seconds.get(phase, 0.0) for phase in PHASES}
        timed["lm-eval"] = max(0.0, total - self.seconds.get("accounting", 0.0) - sum(timed.values()))
        return timed


@contextmanager
def instrument(phases: Phases):
    """Patch the phase functions (class attributes, restored on exit) for one evaluate run;
    the model's forward is timed by wrapping the loader (`instrumented_load`)."""
    from lm_eval.models import utils_hf
    from lm_eval.models.huggingface import HFLM

    from harness.eval.benchmarks import lmeval, stops
    from harness.eval.benchmarks.hf_backend import HarnessHFLM

    def patch(owner, name, wrapped):
        original = getattr(owner, name)
        setattr(owner, name, wrapped(original))
        stack.callback(setattr, owner, name, original)

    with ExitStack() as stack:
        for name in ("tok_encode", "tok_batch_encode"):
            patch(HFLM, name, lambda fn: phases.timed("encode", fn))
        patch(HFLM, "tok_decode", lambda fn: phases.timed("detokenize", fn))
        inner = ("prefill", "decode step", "stops")
        for cls in (HFLM, HarnessHFLM):  # ours overrides _model_generate
            patch(cls, "_model_generate", lambda fn: _counting(phases.timed("generate", fn, inner), phases))
        patch(utils_hf.MultiTokenEOSCriteria, "__call__", lambda fn: phases.timed("stops", fn))
        patch(stops.RowStops, "__call__", lambda fn: phases.timed("stops", fn))
        patch(lmeval, "execute_responses", lambda fn: phases.timed("sandbox", fn))
        yield phases


def instrumented_load(load, phases: Phases):
    """`load`, with the loaded model's forward timed as prefill or decode step."""

    def wrapper(*args, **kwargs):
        lm = load(*args, **kwargs)
        forward = lm.model.forward

        def timed_forward(*f_args, **f_kwargs):
            ids = f_kwargs.get("input_ids", f_args[0] if f_args else None)
            phase = "decode step" if ids is not None and ids.shape[1] == 1 else "prefill"
            return phases.timed(phase, forward)(*f_args, **f_kwargs)

        lm.model.forward = timed_forward  # an instance attribute: nn.Module.__call__ finds it first
        return lm

    return wrapper


def _counting(model_generate, phases: Phases):
    """Counts per batch: real and pad prompt tokens, and row-steps spent on stopped rows."""

    def wrapper(self, context, max_length, stop, **kwargs):
        out = model_generate(self, context, max_length, stop, **kwargs)
        started = time.perf_counter()
        mask = kwargs.get("attention_mask")
        rows, width = context.shape
        phases.counts["prompt tokens"] += int(mask.sum()) if mask is not None else rows * width
        phases.counts["prompt pad tokens"] += rows * width - (int(mask.sum()) if mask is not None else rows * width)
        steps = out.shape[1] - width
        phases.counts["batches"] += 1
        phases.counts["row-steps"] += rows * steps
        phases.counts["useful tokens"] += sum(_useful(self, row[width:].tolist(), stop) for row in out)
        phases.seconds["accounting"] += time.perf_counter() - started
        return out

    return wrapper


def _useful(lm, tokens: list[int], stop: list[str]) -> int:
    """Tokens up to and including the one that completes the row's first stop or EOS: what a
    decoder stopping each row on its own must generate (binary search over token prefixes;
    "holds a stop or an EOS" only turns true as the prefix grows)."""
    eos = lm.model.generation_config.eos_token_id
    eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
    stops = [s for s in stop if s]

    def stopped(n: int) -> bool:
        text = lm.tokenizer.decode(tokens[:n], skip_special_tokens=True)
        return any(t in eos_ids for t in tokens[:n]) or any(s in text for s in stops)

    lo, hi = 1, len(tokens)
    if not tokens or not stopped(hi):
        return len(tokens)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if stopped(mid) else (mid + 1, hi)
    return lo
