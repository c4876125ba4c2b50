"""Synthetic finished run directories in the formats `harness run` writes, so comparison
tests take seconds instead of training (formats: see a real run's stages.json, plan.json,
data.json, eval/*.jsonl, eval/summary.json, track/metrics.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

EVAL_FACTS = {"protocol": "greedy", "tasks": "humaneval,mbpp", "limit": "none", "max_gen_toks": 128,
              "n_samples": 1, "temperatures": "greedy", "top_p": "none", "batch_size": 8}
OBJECTIVES = {"stp": {"kind": "stp"}, "meta": {"kind": "meta", "n": 2}, "deepseek": {"kind": "deepseek", "depth": 1}}


# Meta n=2 on an 8-layer recipe keeps a 6-layer trunk, DeepSeek's trunk is the 6-layer recipe's:
# the two are matched in trunk depth (and, below, in FLOPs per token), as claim 4 needs.
MODELS = {"stp": 6, "meta": 8, "deepseek": 6}


def make_run(root: Path, arm: str, kind: str, *, seed: int = 0, outcomes: dict | None = None,
             per_position: np.ndarray | None = None, acceptance: dict | None = None, manifest: str = "m" * 64,
             tokenizer: str = "t" * 64, val: float = 4.5, study: str = "syn", eval_facts: dict | None = None,
             trajectory: np.ndarray | None = None, tags: dict | None = None, summary: dict | None = None,
             init_from: str | None = None, freeze: str | None = None, recipe_data: dict | None = None) -> Path:
    """A finished run directory; `outcomes`: task -> list of 0/1 per problem (greedy pass@1);
    `trajectory`: [K, rows, S] per-position losses at K checkpoints (the last = final);
    `init_from`, `freeze`: a run from a checkpoint (`model.init_from`, `train.freeze`)."""
    run_dir = Path(root) / f"{arm}-s{seed}"
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "track").mkdir()
    model = {"stp_layers": MODELS[kind], "d_model": 64, "n_heads": 4, "n_kv_heads": 2, "ffn_hidden": 160,
             "vocab_size": 512, "seq_len": 64}
    if init_from:
        model["init_from"] = init_from
    train = {"seed": seed, **({"freeze": freeze} if freeze else {})}
    recipe = {"recipe_version": 1, "name": arm, "model": model, "objective": OBJECTIVES[kind], "train": train,
              **({"data": recipe_data} if recipe_data else {}),
              "track": {"experiment": "syn-exp", "tags": {"study": study, "arm": arm, "seed": str(seed), **(tags or {})}}}
    (run_dir / "recipe.yaml").write_text("# resolved recipe\n" + yaml.safe_dump(recipe))
    per_token = 1.0e7 if kind == "stp" else 1.2e7
    tokens = int(1e6 * 1.0e7 / per_token)
    plan = {"params_total": 2_000_000 + (0 if kind == "stp" else 200_000), "flops_per_token": {"total": per_token},
            "tokens": tokens, "total_flops": tokens * per_token, "targets_per_step": 4096 * (1 if kind == "stp" else 2)}
    (run_dir / "plan.json").write_text(json.dumps(plan))
    vals = {"val/depth_1": val}
    stages = {s: {"inputs": "x", "outputs": {}} for s in ("plan", "data", "train", "export", "evaluate", "track")}
    stages["data"]["outputs"] = {"manifest_hash": manifest}
    stages["train"]["outputs"] = {"val": vals, "step": 10}
    (run_dir / "stages.json").write_text(json.dumps(stages))
    (run_dir / "data.json").write_text(json.dumps({"manifest_hash": manifest, "manifest": {"tokenizer": {"hash": tokenizer}}}))
    summary = {"val": vals, **(eval_facts or EVAL_FACTS), **(summary or {})}
    for task, results in (outcomes or {}).items():
        prefix = "HumanEval/" if task == "humaneval" else ""
        rows = [{"task_id": f"{prefix}{i}" if prefix else 11 + i, "sample": 0, "completion": "", "reason": "",
                 "status": "passed" if ok else "failed"} for i, ok in enumerate(results)]
        (run_dir / "eval" / f"{task}_greedy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary[f"{task}/pass_at_1"] = float(np.mean(results))
        summary[f"{task}/problems"] = len(results)
    (run_dir / "eval" / "summary.json").write_text(json.dumps(summary))
    if per_position is not None:
        np.save(run_dir / "eval" / "per_position.npy", per_position.astype(np.float32))
    if acceptance is not None:
        (run_dir / "eval" / "acceptance.json").write_text(json.dumps(acceptance))
    if trajectory is not None:
        steps = np.arange(1, len(trajectory) + 1) * 10
        np.savez(run_dir / "eval" / "per_position_trajectory.npz", steps=steps, tokens=steps * 4096,
                 losses=trajectory.astype(np.float32))
    lines = [{"step": s, "time_ms": s, "tokens_seen": s * tokens // 4, "val/depth_1": val + 2.0 / s} for s in (1, 2, 3, 4)]
    (run_dir / "track" / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run_dir


TRAINING = (1.3, 1.2, 1.1, 1.0)  # each run's earlier checkpoints: its final losses scaled up uniformly


def along_training(final: np.ndarray) -> np.ndarray:
    """[K, rows, S]: a trajectory whose checkpoints differ from the final one by a uniform
    factor, so matching overall loss keeps the shape of the curve (and its late-vs-early D)."""
    return np.stack([final * f for f in TRAINING])


def study_runs(root: Path, *, rows: int = 64, length: int = 32, late_gain: float = 0.0, seed: int = 0,
               seeds: int = 3) -> list[Path]:
    """An STP baseline, a Meta n=2 arm and a DeepSeek D=1 arm on shared problems and rows, on
    `seeds` seeds each (every run's losses shifted a little by its seed), each with
    per-position losses along training; baseline runs first, then Meta's, then DeepSeek's.

    `late_gain`: how much lower (as a fraction) the MTP arms' loss is at the last position
    than at the first, growing linearly along the window."""
    rng = np.random.default_rng(seed)
    base_pp = 3.0 + rng.gamma(2.0, 0.5, size=(rows, length))
    shape = 1.0 - late_gain * np.linspace(0, 1, length)
    noise = lambda: rng.normal(0, 0.02, size=(rows, length))  # noqa: E731
    he = (rng.random(164) < 0.2).astype(int)
    mb = (rng.random(500) < 0.3).astype(int)
    flip = lambda x, p: np.where(rng.random(x.size) < p, 1, x)  # noqa: E731
    acc = {"depths": {"2": {"agree_greedy": 0.4, "correct": 0.3, "n": 1000}},
           "speculative": {"tokens_per_step": 1.4, "speedup": 1.2, "identical": True}}
    out = {"stp": [], "meta_n2": [], "deepseek_n2": []}
    for s in range(seeds):
        seed_shift = lambda: 1.0 + rng.normal(0, 0.002)  # noqa: E731  each run's seed moves its mean a little
        stp_pp = base_pp * seed_shift() + noise()
        meta_pp, deep_pp = base_pp * 0.98 * shape * seed_shift() + noise(), base_pp * 0.97 * shape * seed_shift() + noise()
        out["stp"].append(make_run(root, "stp", "stp", seed=s, outcomes={"humaneval": he, "mbpp": mb},
                                   per_position=stp_pp, val=4.6, trajectory=along_training(stp_pp)))
        out["meta_n2"].append(make_run(root, "meta_n2", "meta", seed=s, outcomes={"humaneval": flip(he, 0.05),
                                       "mbpp": flip(mb, 0.05)}, per_position=meta_pp, acceptance=acc, val=4.5,
                                       trajectory=along_training(meta_pp)))
        out["deepseek_n2"].append(make_run(root, "deepseek_n2", "deepseek", seed=s, outcomes={
            "humaneval": flip(he, 0.06), "mbpp": flip(mb, 0.02)}, per_position=deep_pp, acceptance=acc, val=4.45,
            trajectory=along_training(deep_pp)))
    return [d for dirs in out.values() for d in dirs]
