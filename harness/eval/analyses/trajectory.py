"""Per-position loss along training: the same held-out rows scored at every kept checkpoint.

The matched-loss late-vs-early statistic (`harness/report/matched_position.py`) compares an
arm with a baseline of equal overall loss; that baseline is the run's own earlier checkpoint,
so each run scores its kept checkpoints (`train.checkpoint_every`, `train.keep_checkpoints`
decide which exist; a study keeps four, at 25/50/75/100% of training).

File (`eval/per_position_trajectory.npz`): steps int64 [K], tokens int64 [K] (training tokens
seen at each), losses float32 [K, rows, S]; K checkpoints in training order, the last being
the final weights (the same numbers as `per_position.npy` when the export is unchanged).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness import rundir


def kept_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, directory) of each intact checkpoint, oldest first."""
    from harness.train.checkpoint import TAG, verify

    found = []
    for path in (Path(run_dir) / rundir.CHECKPOINTS).glob("step_*"):
        match = TAG.match(path.name)
        if match and path.is_dir() and verify(path) is None:
            found.append((int(match.group(1)), path))
    return sorted(found)


def trajectory(run_dir: Path, recipe, rows, losses_of, final=None, device="cpu") -> dict:
    """Score `rows` with each kept checkpoint's weights on `device`; `losses_of(model, rows)` -> [rows, S].
    `final`: the losses of the exported (final) weights when already computed; they stand for
    the newest checkpoint, which holds the same weights, instead of scoring it again."""
    from harness.model.mtp_model import build_model
    from harness.train.weights import fp32_state_dict

    kept = kept_checkpoints(run_dir)
    steps, losses = [], []
    for i, (step, path) in enumerate(kept):
        steps.append(step)
        if final is not None and i == len(kept) - 1:
            losses.append(final)
            continue
        model = build_model(recipe.model, recipe.objective)
        model.load_state_dict(fp32_state_dict(path, recipe.train.zero_stage, recipe.train.precision))
        model.to(device)
        losses.append(losses_of(model, rows))
    return {"steps": np.array(steps, dtype=np.int64),
            "tokens": np.array(steps, dtype=np.int64) * recipe.tokens_per_step,
            "losses": np.stack(losses).astype(np.float32) if losses else np.zeros((0, 0, 0), np.float32)}


def write_trajectory(found: dict, out_dir: Path) -> dict:
    np.savez(Path(out_dir) / rundir.TRAJECTORY, **found)
    return {"position/trajectory_checkpoints": int(len(found["steps"]))}


def read_trajectory(eval_dir: Path) -> dict | None:
    path = Path(eval_dir) / rundir.TRAJECTORY
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {key: data[key] for key in ("steps", "tokens", "losses")}
