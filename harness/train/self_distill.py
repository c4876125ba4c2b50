"""Making self-distillation data (`data.self_distill`): the frozen checkpoint continues the
corpus, and post-hoc heads train on what it said.

For each training window the run will consume, the first `prompt_tokens` corpus tokens are
kept and the rest of the row (R = the objective's row length, S plus its extra targets) is the
checkpoint's greedy continuation (`model/continuation.py`: batched, KV-cached, fp32, no
gradients, on the run's device). Only the windows the run consumes are made: the loader's
(seed, step) -> windows mapping is followed for every step, so the set is exact (an epoch that
wraps repeats windows, which are made once); the whole split would cost more than the run
trains on. Validation and evaluation keep the corpus, so losses and acceptance compare with
arms trained on corpus targets.

The folder (format in `data/distilled.py`) lives beside the prepared data, at
`CACHE/distilled/<key>`, keyed by everything that changes its content: the data manifest,
the checkpoint's weights fingerprint, the option's settings, S, R, the reserve, the window
set (the recipe's steps, batch and seed) and the device type (GPU and CPU kernels round
differently). It is built in a temporary folder published whole, as prepared data is.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import numpy as np

from harness.atomic import atomic_write_text, publish_dir
from harness.data.distilled import MANIFEST, TOKENS, WINDOWS, load_distilled_manifest
from harness.data.loader import TokenWindows, recipe_windows
from harness.data.prepare import PreparedData, remove_stale_builds
from harness.errors import HarnessError
from harness.hashing import sha256_json
from harness.threads import torch_threads

# Bump when the content of a distilled folder changes meaning.
FORMAT_VERSION = 1


def consumed_windows(recipe, corpus: TokenWindows) -> np.ndarray:
    """Sorted global indices of every window the run's steps read (all ranks' slices together)."""
    cfg = recipe.train
    steps = [corpus.windows_at(step, cfg.global_batch_size, cfg.seed) for step in range(recipe.steps)]
    return np.unique(np.concatenate(steps))


def key_inputs(recipe, data: PreparedData, init_weights: str, windows: np.ndarray, device) -> dict:
    import torch

    S = recipe.seq_len
    return {"format_version": FORMAT_VERSION, "manifest_hash": data.manifest_hash, "init_weights": init_weights,
            "self_distill": recipe.data.self_distill.model_dump(mode="json"), "seq_len": S,
            "row_length": recipe.objective.row_length(S), "lookahead_reserve": recipe.data.lookahead_reserve,
            "windows": sha256_json(windows.tolist()), "device": torch.device(device).type}


def self_distill(recipe, data: PreparedData, init_dir: Path, init_weights: str, device, log=print) -> dict:
    """The distilled folder for this run, made unless the cache has it; returns what a run
    records: its path, key, count of windows, tokens generated, seconds and whether reused."""
    corpus = recipe_windows(recipe, data, "train")
    windows = consumed_windows(recipe, corpus)
    inputs = key_inputs(recipe, data, init_weights, windows, device)
    key = sha256_json(inputs)[:24]
    final = data.path.parent.parent / "distilled" / key
    manifest = load_distilled_manifest(final)
    reused = manifest is not None
    if not reused:
        log(f"self-distillation: {len(windows)} windows, continuing {recipe.data.self_distill.prompt_tokens} corpus "
            f"tokens to {corpus.row_length} with {init_dir} on {device}")
        _build_atomically(final, recipe, data.dtype, corpus, windows, inputs, init_dir, device, log)
        manifest = load_distilled_manifest(final)
    return {"path": str(final), "key": key, "windows": manifest["windows"], "generated_tokens":
            manifest["generated_tokens"], "seconds": manifest["seconds"], "init_weights": init_weights,
            "reused": reused}


def _build_atomically(final: Path, recipe, dtype, corpus, windows, inputs, init_dir, device, log) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(final.parent, _Printer(log))
    tmp = final.parent / f".tmp-{final.name}.{uuid.uuid4().hex[:8]}.{os.getpid()}@{socket.gethostname()}"
    tmp.mkdir()
    try:
        started = time.time()
        with torch_threads(recipe.train.num_threads):
            generate(recipe, corpus, windows, init_dir, device, tmp / TOKENS, dtype)
        np.save(tmp / WINDOWS, windows)
        seconds = time.time() - started
        P = recipe.data.self_distill.prompt_tokens
        manifest = {"format_version": FORMAT_VERSION, "windows": len(windows), "row_length": corpus.row_length,
                    "prompt_tokens": P, "dtype": dtype.name, "generated_tokens": len(windows) * (corpus.row_length - P),
                    "seconds": round(seconds, 2), "init_from": str(init_dir), "key_inputs": inputs,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        log(f"self-distillation: {manifest['generated_tokens']} tokens generated in {seconds:.1f} s")
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")  # last: marks it done
        try:
            publish_dir(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a concurrent build that finished first
                raise HarnessError(f"cannot move the distilled data into {final}: it exists but holds no manifest",
                                   fix=f"delete {final} and run again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def generate(recipe, corpus: TokenWindows, windows: np.ndarray, init_dir: Path, device, out: Path, dtype) -> None:
    """Write the distilled rows of `windows` to `out` ([len(windows), R] memmap of `dtype`)."""
    import torch

    from harness.devices import to_device
    from harness.model.continuation import greedy_continuation
    from harness.model.mtp_model import build_model
    from harness.model.pretrained import load_pretrained

    cfg = recipe.data.self_distill
    model = build_model(recipe.model, recipe.objective)  # fp32: the checkpoint's next-token path, as training starts
    load_pretrained(model, init_dir)
    model = model.to(device).eval()
    rows = np.memmap(out, dtype=dtype, mode="w+", shape=(len(windows), corpus.row_length))
    for start in range(0, len(windows), cfg.batch_size):
        chunk = windows[start : start + cfg.batch_size]
        prompts = to_device(torch.from_numpy(corpus.rows(chunk)[:, : cfg.prompt_tokens]), device)
        rows[start : start + len(chunk)] = greedy_continuation(model, prompts, corpus.row_length).cpu().numpy()
    rows.flush()
    del rows


class _Printer:
    """`remove_stale_builds` prints through a console; this one logs instead."""

    def __init__(self, log):
        self.print = log
