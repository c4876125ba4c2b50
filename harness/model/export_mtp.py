"""DeepSeek-style MTP modules in a layout transformers' generic MTP support drafts with.

transformers 5.x runs a checkpoint's MTP layers as the drafter of assisted decoding
(`model.generate(..., use_mtp=True)`: `MTPCandidateGenerator`, `MtpModel` in
`modeling_layers.py`) for the architectures whose config has `num_mtp_layers` (alias
`num_nextn_predict_layers`). None of them is a plain Llama, so the export is a second
directory, `<export>/transformers_mtp/`, in GLM-4.5's layout (`Glm4MoeForCausalLM`), whose
layers match our trunk exactly when configured as below (checked in tests: logits equal the
harness model's, `use_mtp=True` output equals plain greedy output):

  trunk              Glm4Moe with first_k_dense_replace = all layers (dense SwiGLU MLPs),
                     attention_bias false, use_qk_norm false, partial_rotary_factor 1.0
                     (rotate_half RoPE on the whole head, as ours), GQA heads, RMSNorm eps
                     and RoPE theta from the trunk, tied or untied embeddings as trained
  MTP module k=1     model.layers.<N>: enorm, hnorm, eh_proj ([emb; h], as ours), the block,
                     shared_head.norm (transformers applies it before the shared lm_head)
  its MLP            transformers builds MTP layers as MoE (get_mtp_config sets
                     first_k_dense_replace 0), so our SwiGLU is its shared expert
                     (n_shared_experts x moe_intermediate_size = ffn_hidden) and the two
                     routed experts it insists on are all-zero: they add exactly 0. They are
                     8 wide (torch's grouped_mm wants 16-byte strides), or ffn_hidden wide
                     when 8 does not divide it
  h^0                the main model's last layer output before the final norm, as we train
                     it: config `tie_last_hidden_states: false` makes transformers hand the
                     MTP layer that state instead of the normed one

Two constraints of transformers 5.24 shape the directory. Its loader finds MTP weights by
the layer indices of the released GLM-4.5 checkpoints (`Glm4MoePreTrainedModel.
_keys_to_ignore_on_load_unexpected`: layers 46 and 92, not num_hidden_layers), so a trunk of
L < 46 layers is padded to N = 46 (L < 92: 92) with identity layers (o_proj and down_proj
zero, so x + 0 + 0 = x exactly), which costs their compute and storage; and it loads a
single MTP layer and chains post-normed states between layers, so only D = 1 is written
(our modules chain pre-norm states; D >= 2 has no exact transformers equivalent). vLLM and
SGLang read this layout too (`Glm4MoeMTP`, NextN; MTP layer at num_hidden_layers); neither
was run here (no GPU).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from harness.model.mtp_model import MTPModel

SUBDIR = "transformers_mtp"
LOADER_INDICES = (46, 92)  # transformers 5.24 Glm4MoePreTrainedModel._keys_to_ignore_on_load_unexpected
ROUTED_EXPERTS = 2  # Glm4MoeTopkRouter takes top-2 within a group, so it needs two experts
EXPERT_WIDTH = 8  # 16-byte strides in bf16 for torch's grouped_mm (transformers' default experts kernel)


def expert_width(ffn_hidden: int) -> int:
    return EXPERT_WIDTH if ffn_hidden % EXPERT_WIDTH == 0 else ffn_hidden


def supported(model: MTPModel) -> str | None:
    """None when the model has a transformers MTP export, else why not (recorded in mtp_config.json)."""
    cfg = model.objective_cfg
    if cfg.standard_mtp_layout != "deepseek_v3_nextn":
        return (f"objective {cfg.kind!r}: no MTP module format in transformers "
                "(its extra tensors are in mtp_heads.safetensors)")
    if cfg.n_predict != 2:
        return f"{cfg.n_predict - 1} modules: transformers 5.24 loads one GLM MTP layer and chains post-normed states"
    if len(model.trunk.layers) > LOADER_INDICES[-1]:
        return f"{len(model.trunk.layers)} layers: transformers 5.24 finds GLM MTP weights only at layers 46 or 92"
    return None


def padded_depth(n_layers: int) -> int:
    return next(n for n in LOADER_INDICES if n >= n_layers)


def glm_config(model: MTPModel, tokenizer, n_layers: int):
    from transformers import Glm4MoeConfig

    m = model.model_cfg
    return Glm4MoeConfig(
        vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.ffn_hidden,
        num_hidden_layers=n_layers, num_attention_heads=m.n_heads, num_key_value_heads=m.n_kv_heads,
        head_dim=m.head_dim, hidden_act="silu", max_position_embeddings=m.seq_len, rms_norm_eps=m.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": m.rope_theta, "partial_rotary_factor": 1.0},
        tie_word_embeddings=m.tie_embeddings, attention_bias=False, use_qk_norm=False,
        first_k_dense_replace=n_layers, num_nextn_predict_layers=1,
        moe_intermediate_size=expert_width(m.ffn_hidden), n_shared_experts=m.ffn_hidden // expert_width(m.ffn_hidden),
        n_routed_experts=ROUTED_EXPERTS,
        num_experts_per_tok=1, n_group=1, topk_group=1, routed_scaling_factor=1.0,
        initializer_range=m.init_std, tie_last_hidden_states=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        dtype=str(model.trunk.embed_tokens.weight.dtype).removeprefix("torch."),
    )  # fmt: skip


def _identity_layer(i: int, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A decoder layer that returns its input exactly: every matrix zero, norms one."""
    out = {}
    for key, tensor in like.items():
        zero = "layernorm" not in key
        out[f"model.layers.{i}.{key}"] = torch.zeros_like(tensor) if zero else torch.ones_like(tensor)
    return out


def glm_tensors(model: MTPModel, n_layers: int) -> dict[str, torch.Tensor]:
    """The GLM state dict: trunk, identity padding up to n_layers, the MTP module at n_layers."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors = {f"model.{k.removeprefix('trunk.')}": v for k, v in state.items()
               if k.startswith("trunk.") and k != "trunk.lm_head.weight"}  # fmt: skip
    if not model.model_cfg.tie_embeddings:
        tensors["lm_head.weight"] = state["trunk.lm_head.weight"]
    block = {k.removeprefix("trunk.layers.0."): v for k, v in state.items() if k.startswith("trunk.layers.0.")}
    for i in range(len(model.trunk.layers), n_layers):
        tensors.update(_identity_layer(i, block))
    tensors.update(_mtp_layer(state, n_layers, model.model_cfg.d_model, expert_width(model.model_cfg.ffn_hidden)))
    return tensors


def _mtp_layer(state: dict[str, torch.Tensor], index: int, d: int, width: int) -> dict[str, torch.Tensor]:
    prefix, out = f"model.layers.{index}.", {}
    for key, tensor in state.items():
        if not key.startswith("objective.layers.0."):
            continue
        name = key.removeprefix("objective.layers.0.").removeprefix("block.")
        name = name.replace("mlp.", "mlp.shared_experts.", 1) if name.startswith("mlp.") else name
        out[prefix + name] = tensor
    dtype = state["trunk.embed_tokens.weight"].dtype
    for e in range(ROUTED_EXPERTS):  # GLM-4.5's per-expert names; all zero, so they add exactly 0
        out[f"{prefix}mlp.experts.{e}.gate_proj.weight"] = torch.zeros(width, d, dtype=dtype)
        out[f"{prefix}mlp.experts.{e}.up_proj.weight"] = torch.zeros(width, d, dtype=dtype)
        out[f"{prefix}mlp.experts.{e}.down_proj.weight"] = torch.zeros(d, width, dtype=dtype)
    out[f"{prefix}mlp.gate.weight"] = torch.zeros(ROUTED_EXPERTS, d, dtype=torch.float32)
    out[f"{prefix}mlp.gate.e_score_correction_bias"] = torch.zeros(ROUTED_EXPERTS, dtype=torch.float32)
    return out


def write_transformers_mtp(model: MTPModel, out_dir: Path, tokenizer, token_files: list[Path]) -> dict:
    """Write `<out_dir>/transformers_mtp/` when `supported`; return what mtp_config.json records."""
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    target = Path(out_dir) / SUBDIR
    shutil.rmtree(target, ignore_errors=True)
    reason = supported(model)
    if reason is not None:
        return {"written": False, "reason": reason}
    n_layers = padded_depth(len(model.trunk.layers))
    target.mkdir(parents=True)
    glm_config(model, tokenizer, n_layers).save_pretrained(str(target))
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(str(target))  # fmt: skip
    save_file(glm_tensors(model, n_layers), str(target / "model.safetensors"), metadata={"format": "pt"})
    for src in token_files:
        shutil.copyfile(src, target / src.name)
    return {"written": True, "dir": SUBDIR, "architecture": "Glm4MoeForCausalLM", "num_hidden_layers": n_layers,
            "identity_layers": n_layers - len(model.trunk.layers), "mtp_layer": n_layers}  # fmt: skip


def read_info(export_dir: Path) -> dict:
    return json.loads((Path(export_dir) / "mtp_config.json").read_text()).get("transformers_mtp", {})
