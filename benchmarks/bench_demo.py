"""How long the main job takes a newcomer: `harness run recipes/deepseek_n2.yaml` (what `make demo`
runs), cold (an empty data cache: corpus read, decontaminated, tokenizer trained) and then warm
(the prepared data reused, everything else from scratch), each in a fresh working directory.

Run from the repository root:  python benchmarks/bench_demo.py [--recipe recipes/deepseek_n2.yaml]
                                                               [--passes cold,warm]

Prints per pass the wall time of the command and each stage's own seconds (from the run's
stages.json), with the machine's load: on a shared machine the figures move with it. Nothing
else should run while it does (the README's figure is for a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import load  # noqa: E402


def one_pass(recipe: Path, cache: Path, workdir: Path) -> tuple[float, dict[str, float], int]:
    env = dict(os.environ, MTP_HARNESS_CACHE=str(cache))
    env.pop("MLFLOW_TRACKING_URI", None)  # the newcomer's default: ./mlflow.db in the working directory
    harness = Path(sys.executable).with_name("harness")
    started = time.perf_counter()
    done = subprocess.run([str(harness), "run", str(recipe)], cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"harness run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    (run_dir,) = (workdir / "runs").iterdir()
    stages = json.loads((run_dir / "stages.json").read_text())
    return wall, {name: entry.get("seconds", 0.0) for name, entry in stages.items()}, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "deepseek_n2.yaml")
    parser.add_argument("--passes", default="cold,warm", help="cold (empty cache) and/or warm, in order")
    args = parser.parse_args()
    recipe = args.recipe.resolve()
    with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
        cache = Path(tmp) / "cache"
        for name in args.passes.split(","):
            if name not in ("cold", "warm"):
                parser.error(f"unknown pass {name!r}: cold or warm")
            if name == "cold" and cache.exists():
                subprocess.run(["rm", "-rf", str(cache)], check=True)
            workdir = Path(tmp) / name
            workdir.mkdir()
            before = load()
            wall, stages, _ = one_pass(recipe, cache, workdir)
            parts = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in stages.items() if seconds >= 0.5)
            print(f"{name}: {wall:.0f} s ({wall / 60:.1f} min) wall; {parts}; before: {before}", flush=True)


if __name__ == "__main__":
    main()
