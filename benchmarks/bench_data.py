"""Data pipeline benchmark: preparation of the laptop corpus (tokenizer training and
tokenisation throughput), the cache hit, and the loader's time per step beside the step time
of a model shaped like the laptop recipes.

Run from the repository root:  python benchmarks/bench_data.py [--cache DIR] [--threads 2]

The step-time stand-in is a transformers LlamaForCausalLM with the laptop shape (6 layers,
d 128, 4 heads, 2 KV heads, FFN 352, vocab 4096; batch 16 x 256, fp32), so the loader's share
of a step can be judged before the harness's own model exists. Target: loader < 2% of a step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare(cache: Path):
    from harness.data.prepare import prepare_data
    from harness.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "laptop" / "base.yaml")
    kwargs = dict(vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len, base_dir=ROOT / "recipes",
                  cache_root=cache)
    started = time.perf_counter()
    prepared = prepare_data(recipe.data, **kwargs)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    prepare_data(recipe.data, **kwargs)
    warm = time.perf_counter() - started
    return recipe, prepared, cold, warm


def loader_seconds(recipe, prepared, steps: int) -> float:
    from harness.data.loader import TokenWindows

    windows = TokenWindows(prepared, "train", seq_len=recipe.seq_len, row_length=recipe.seq_len + 4,
                           lookahead_reserve=recipe.data.lookahead_reserve)
    gbs, seed = recipe.train.global_batch_size, recipe.train.seed
    windows.batch(0, gbs, seed)  # first epoch's permutation, paid once per epoch
    started = time.perf_counter()
    for step in range(steps):
        windows.batch(step, gbs, seed)
    return (time.perf_counter() - started) / steps


def model_step_seconds(recipe, repeats: int) -> float:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    m = recipe.model
    config = LlamaConfig(vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.ffn_hidden,
                         num_hidden_layers=m.stp_layers, num_attention_heads=m.n_heads,
                         num_key_value_heads=m.n_kv_heads, max_position_embeddings=m.seq_len)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).float()
    ids = torch.randint(0, m.vocab_size, (recipe.train.global_batch_size, recipe.seq_len))
    times = []
    for i in range(repeats + 2):
        started = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        model.zero_grad(set_to_none=True)
        if i >= 2:  # first two calls warm up allocator and kernels
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="cache root (default: a fresh temporary folder)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the model step")
    parser.add_argument("--loader-steps", type=int, default=300)
    parser.add_argument("--model-steps", type=int, default=5)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        recipe, prepared, cold, warm = prepare(args.cache or Path(tmp))
        provenance = json.loads((prepared.path / "provenance.json").read_text())
        tokens = sum(s["tokens"] for s in prepared.manifest["splits"].values())
        loader = loader_seconds(recipe, prepared, args.loader_steps)
    seconds = provenance["seconds"]
    step = model_step_seconds(recipe, args.model_steps)
    print(f"corpus: stdlib, {prepared.manifest['source']['documents']} documents, {tokens:,} tokens "
          f"(vocab {prepared.vocab_size}, {prepared.manifest['dtype']})")
    print(f"prepare (cold): {cold:.1f} s = read+decontaminate {seconds['read_decontaminate']:.1f} s, "
          f"BPE training {seconds['tokenizer']:.1f} s, tokenisation {seconds['tokenise']:.1f} s")
    print(f"tokenisation throughput: {tokens / seconds['tokenise']:,.0f} tokens/s")
    print(f"prepare (cache hit): {warm * 1000:.0f} ms")
    print(f"loader: {loader * 1e3:.3f} ms per step (batch {recipe.train.global_batch_size} x {recipe.seq_len + 4})")
    print(f"stand-in model fwd+bwd: {step * 1e3:.0f} ms per step ({args.threads} threads, fp32)")
    print(f"loader / step: {100 * loader / step:.3f}% (target < 2%)")


if __name__ == "__main__":
    main()
