"""What the robustness checks cost, and what trusting recorded sizes and mtimes saves.

Run from the repository root:  python benchmarks/bench_robust.py [--rounds 5]

Prints, as medians of paired rounds (this VM is noisy, ENV-NOTES):
- finding the laptop corpus's prepared data in the cache (the cache-hit path every rank
  of a requeued job used to take), trusting recorded file hashes vs `--verify`;
- verifying a checkpoint of the laptop model, trusted vs re-hashed;
- refusing hostile recipe files: a YAML alias bomb and 5,000 unknown keys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def data_lookup(cache: Path, rounds: int) -> None:
    from harness.data.prepare import prepare_data
    from harness.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "laptop" / "base.yaml")
    kwargs = dict(vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len, base_dir=ROOT / "recipes",
                  cache_root=cache)
    prepare_data(recipe.data, **kwargs)  # build once (or find it)
    trusted, verified = [], []
    for _ in range(rounds):
        trusted.append(timed(lambda: prepare_data(recipe.data, **kwargs)))
        verified.append(timed(lambda: prepare_data(recipe.data, verify=True, **kwargs)))
    t, v = statistics.median(trusted), statistics.median(verified)
    print(f"data cache hit, laptop corpus: trusted {t * 1e3:.0f} ms, --verify {v * 1e3:.0f} ms ({v / t:.1f}x)")


def checkpoint_verify(rounds: int) -> None:
    from harness.model.mtp_model import build_model
    from harness.recipe import load_recipe
    from harness.train import checkpoint
    from harness.train.deepspeed_config import build_engine
    from harness.train.distributed import init_distributed

    init_distributed()
    recipe = load_recipe(ROOT / "recipes" / "laptop" / "base.yaml")
    engine, _, _ = build_engine(build_model(recipe.model, recipe.objective), recipe.train, 10, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint.save(engine, Path(tmp), 1, {"step": 1}, is_main=True, keep=1)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        trusted, full = [], []
        for _ in range(rounds):
            trusted.append(timed(lambda: checkpoint.verify(path)))
            full.append(timed(lambda: checkpoint.verify(path, full=True)))
    t, f = statistics.median(trusted), statistics.median(full)
    print(f"checkpoint verify, laptop model ({size / 1e6:.0f} MB): trusted {t * 1e3:.2f} ms, "
          f"re-hashed {f * 1e3:.1f} ms ({f / t:.0f}x); re-hashing costs ~{f / size * 1e12:.0f} s per TB")


def hostile_recipes(rounds: int) -> None:
    from harness.errors import HarnessError
    from harness.recipe import load_recipe

    bomb = "a0: &a0 {x: 1}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}, y: *a{i - 1}, z: *a{i - 1}}}\n" for i in range(1, 30))
    junk = f"extends: {ROOT / 'recipes' / 'stp.yaml'}\ntrain:\n" + "".join(f"  k{i}: {i}\n" for i in range(5000))
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("alias bomb (3^29 copies)", bomb), ("5,000 unknown keys", junk)):
            path = Path(tmp) / "r.yaml"
            path.write_text(text)
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                try:
                    load_recipe(path)
                except HarnessError:
                    times.append(time.perf_counter() - started)
            print(f"refused {name}: {statistics.median(times) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=None, help="data cache (default: $MTP_HARNESS_CACHE)")
    args = parser.parse_args()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    print(f"load average {os.getloadavg()[0]:.1f}")
    hostile_recipes(args.rounds)
    checkpoint_verify(args.rounds)
    from harness.data.prepare import default_cache_root

    data_lookup(args.cache or default_cache_root(), args.rounds)


if __name__ == "__main__":
    main()
