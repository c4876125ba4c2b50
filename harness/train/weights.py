"""Full fp32 weights out of a DeepSpeed checkpoint, whatever its ZeRO stage.

Stage 0 keeps the whole module in `mp_rank_00_model_states.pt`; stages 1-3 keep the fp32
master copy partitioned with the optimiser state, which DeepSpeed's own
`get_fp32_state_dict_from_zero_checkpoint` reassembles (on CPU too).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError


def fp32_state_dict(checkpoint_dir: Path, zero_stage: int) -> dict:
    """`checkpoint_dir` is one tag's directory (RUN_DIR/checkpoints/step_N)."""
    import torch

    checkpoint_dir = Path(checkpoint_dir)
    if zero_stage == 0:
        path = checkpoint_dir / "mp_rank_00_model_states.pt"
        if not path.is_file():
            raise HarnessError(f"{checkpoint_dir}: no mp_rank_00_model_states.pt", fix="re-run training")
        module = torch.load(path, map_location="cpu", weights_only=False)["module"]
        return {k: v.float() for k, v in module.items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir.parent), tag=checkpoint_dir.name)
    return {k: v.float() for k, v in state.items()}
