"""Export to a Hugging Face `LlamaForCausalLM` directory, and loading it back into harness.

The next-token path (trunk layers, plus Meta's head 1; DeepSeek's main model) becomes a
standard Llama directory that transformers, lm-eval and vLLM load as is: config.json,
model.safetensors, generation_config.json and the tokenizer's files. What the objective
adds (Meta's heads 2..n, DeepSeek's modules) goes beside it to mtp_heads.safetensors, and
mtp_config.json records the harness configs, so `load_exported` rebuilds the whole model
for further training or analysis. Export is deterministic: export -> load -> export gives
byte-identical files.

max_position_embeddings is the trained context, `seq_len`: RoPE has no learned positions, so
transformers would run past it, but nothing past it was trained. Evaluation cuts prompts to
fit it (`harness.eval.benchmarks.context`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from harness.errors import HarnessError
from harness.model.config import TrunkConfig
from harness.model.export_mtp import write_transformers_mtp
from harness.model.mtp_model import MTPModel

MTP_FORMAT = 1
# The files a Hugging Face tokenizer's save_pretrained writes (fast or slow); we copy these.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
)
EXPORT_FILES = ("config.json", "generation_config.json", "model.safetensors", "mtp_heads.safetensors", "mtp_config.json")


def _trunk_names(model: MTPModel) -> dict[str, tuple[str, str | None]]:
    """Trunk state-dict key -> (file, Hugging Face name); a tied unembedding has no name."""
    names: dict[str, tuple[str, str | None]] = {}
    for key in model.trunk.state_dict():
        if key == "lm_head.weight":
            names[f"trunk.{key}"] = ("model", None if model.model_cfg.tie_embeddings else key)
        else:
            names[f"trunk.{key}"] = ("model", f"model.{key}")
    return names


def export_names(model: MTPModel) -> dict[str, tuple[str, str | None]]:
    """Every harness state-dict key -> ("model" | "mtp", exported name)."""
    names = _trunk_names(model)
    own = model.objective_cfg.export_names(model.objective, len(model.trunk.layers))
    names.update({f"objective.{key}": target for key, target in own.items()})
    return names


def _split(model: MTPModel) -> dict[str, dict[str, torch.Tensor]]:
    files: dict[str, dict[str, torch.Tensor]] = {"model": {}, "mtp": {}}
    state = model.state_dict()
    for key, (file, name) in export_names(model).items():
        if name is not None:
            files[file][name] = state[key].detach().cpu().contiguous()
    return files


def _tokenizer(tokenizer_dir: Path, vocab_size: int):
    """The tokenizer files to copy, and the tokenizer itself (checked against the model)."""
    from transformers import AutoTokenizer

    present = [tokenizer_dir / f for f in TOKENIZER_FILES if (tokenizer_dir / f).is_file()]
    if not any(p.name in ("tokenizer.json", "tokenizer.model") for p in present):
        raise HarnessError(
            f"{tokenizer_dir}: no tokenizer.json or tokenizer.model",
            fix="pass the directory a Hugging Face tokenizer's save_pretrained wrote",
        )
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    if len(tokenizer) > vocab_size:
        raise HarnessError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only {vocab_size} embedding rows",
            fix="export with the tokenizer the model was trained with",
        )
    return present, tokenizer


def _llama_config(model: MTPModel, tokenizer):
    from transformers import LlamaConfig

    m = model.model_cfg
    dtype = str(model.trunk.embed_tokens.weight.dtype).removeprefix("torch.")
    return LlamaConfig(
        vocab_size=m.vocab_size,
        hidden_size=m.d_model,
        intermediate_size=m.ffn_hidden,
        num_hidden_layers=len(model.next_token_layers()),
        num_attention_heads=m.n_heads,
        num_key_value_heads=m.n_kv_heads,
        head_dim=m.head_dim,
        max_position_embeddings=m.seq_len,
        rms_norm_eps=m.norm_eps,
        rope_theta=m.rope_theta,
        tie_word_embeddings=m.tie_embeddings,
        initializer_range=m.init_std,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
    )


def _mtp_config(model: MTPModel) -> dict:
    n_main = len(model.trunk.layers)
    return {
        "format": MTP_FORMAT,
        # without `init_from`: an export is whole in itself, wherever its training started
        "trunk": model.model_cfg.model_dump(mode="json", exclude={"init_from"}),
        "objective": model.objective_cfg.model_dump(mode="json"),
        "trunk_layers": n_main,
        "next_token_layers": len(model.next_token_layers()),
        "layout": model.objective_cfg.export_layout(n_main),
    }


def export_hf(model: MTPModel, out_dir: str | Path, tokenizer_dir: str | Path, overwrite: bool = False) -> Path:
    """Write `model` as a Llama directory plus its MTP parameters; returns the directory."""
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    out, tokenizer_dir = Path(out_dir), Path(tokenizer_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise HarnessError(f"{out}: export directory is not empty", fix="choose a new directory or pass overwrite=True")
    token_files, tokenizer = _tokenizer(tokenizer_dir, model.model_cfg.vocab_size)
    out.mkdir(parents=True, exist_ok=True)
    for name in EXPORT_FILES:
        (out / name).unlink(missing_ok=True)
    files = _split(model)
    _llama_config(model, tokenizer).save_pretrained(str(out))
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(str(out))
    save_file(files["model"], str(out / "model.safetensors"), metadata={"format": "pt"})
    if files["mtp"]:
        save_file(files["mtp"], str(out / "mtp_heads.safetensors"), metadata={"format": "pt"})
    mtp_config = {**_mtp_config(model), "transformers_mtp": write_transformers_mtp(model, out, tokenizer, token_files)}
    (out / "mtp_config.json").write_text(json.dumps(mtp_config, indent=2, sort_keys=True) + "\n")
    for src in token_files:
        if src.resolve() != (out / src.name).resolve():
            shutil.copyfile(src, out / src.name)
    return out


def load_exported(path: str | Path) -> MTPModel:
    """Rebuild the harness model (next-token path and MTP parameters) from an export."""
    from safetensors.torch import load_file

    from harness.model.objectives.registry import objective_config

    path = Path(path)
    meta_path = path / "mtp_config.json"
    if not meta_path.is_file():
        raise HarnessError(f"{path}: no mtp_config.json, so not a harness export", fix="pass a directory export_hf wrote")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != MTP_FORMAT:
        raise HarnessError(f"{meta_path}: format {meta.get('format')!r}, this harness reads {MTP_FORMAT}")
    trunk = dict(meta["trunk"])
    if "n_layers" in trunk:  # exports written before the field was named for what it is
        trunk["stp_layers"] = trunk.pop("n_layers")
    model_cfg = TrunkConfig.model_validate(trunk)
    objective_cfg = objective_config(meta["objective"])
    model = MTPModel(model_cfg, objective_cfg)
    tensors = {"model": load_file(str(path / "model.safetensors")), "mtp": {}}
    if (path / "mtp_heads.safetensors").is_file():
        tensors["mtp"] = load_file(str(path / "mtp_heads.safetensors"))
    names = export_names(model)
    if model_cfg.tie_embeddings:
        names["trunk.lm_head.weight"] = ("model", "model.embed_tokens.weight")
    _check_names(path, names, tensors)
    model.load_state_dict({key: tensors[file][name] for key, (file, name) in names.items()}, strict=True)
    return model


def _check_names(path: Path, names: dict, tensors: dict) -> None:
    """The files hold exactly the tensors this model expects, as nanoGPT checks its import."""
    for file in ("model", "mtp"):
        want = {name for f, name in names.values() if f == file}
        have = set(tensors[file])
        if want != have:
            missing, extra = sorted(want - have)[:3], sorted(have - want)[:3]
            raise HarnessError(
                f"{path}: {file} weights do not match mtp_config.json (missing {missing}, unexpected {extra})",
                fix="re-export the model; the directory was changed or mixed with another export",
            )
