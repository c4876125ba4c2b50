"""Full fp32 weights out of a DeepSpeed checkpoint, whatever its ZeRO stage.

Stage 0 keeps the whole module in `mp_rank_00_model_states.pt`; stages 1-3 keep the fp32
master copy partitioned with the optimiser state, which DeepSpeed's own
`get_fp32_state_dict_from_zero_checkpoint` reassembles (on CPU too). bf16 at ZeRO-1 with
fp32 gradient accumulation (`deepspeed_config`) runs DeepSpeed's BF16_Optimizer, whose
`bf16_zero_pp_rank_*` files hold the same flat fp32 partitions as ZeRO-1's but lack the
stage tag that function checks; its ZeRO-1/2 reassembly reads them.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError


def fp32_state_dict(checkpoint_dir: Path, zero_stage: int, precision: str = "fp32") -> dict:
    """`checkpoint_dir` is one tag's directory (RUN_DIR/checkpoints/step_N); `zero_stage` and
    `precision` are the recipe's, which say how DeepSpeed laid the weights out."""
    import torch

    checkpoint_dir = Path(checkpoint_dir)
    if zero_stage == 0:
        path = checkpoint_dir / "mp_rank_00_model_states.pt"
        if not path.is_file():
            raise HarnessError(f"{checkpoint_dir}: no mp_rank_00_model_states.pt", fix="re-run training")
        module = torch.load(path, map_location="cpu", weights_only=False)["module"]
        return {k: v.float() for k, v in module.items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    if zero_stage == 1 and precision == "bf16":
        state = _bf16_optimizer_state_dict(checkpoint_dir)
    else:
        state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir.parent), tag=checkpoint_dir.name)
    return {k: v.float() for k, v in state.items()}


def _bf16_optimizer_state_dict(checkpoint_dir: Path) -> dict:
    import torch
    from deepspeed.utils import zero_to_fp32 as z

    files = z.get_optim_files(str(checkpoint_dir))  # in rank order
    partitions = [torch.load(f, map_location="cpu", weights_only=False)[z.OPTIMIZER_STATE_DICT]
                  [z.SINGLE_PARTITION_OF_FP32_GROUPS] for f in files]
    models = z.parse_model_states(z.get_model_state_files(str(checkpoint_dir)))
    return z._get_fp32_state_dict_from_zero2_checkpoint(len(files), partitions, models, False)
