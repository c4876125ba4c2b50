"""A pretrained checkpoint into the harness model (`model.init_from`): its weights read lazily
from safetensors, checked as nanoGPT checks its import, and the objective's own parameters set
from it.

The checkpoint's tensors go where an export of this model would have written them
(`export.export_names`: Hugging Face Llama names), so any Llama directory and any harness
export load the same way. Files are opened with `safe_open`, which maps them and copies one
tensor at a time into the model's parameters (cast to their dtype): a checkpoint is never
held in memory twice. The objective's own parameters (Meta's heads 2..n, DeepSeek's modules,
TOP's head) come from the checkpoint's `mtp_heads.safetensors` when it holds exactly this
objective's tensors (a harness export of the same objective, continued); otherwise the
objective sets them from the loaded trunk (`init_from_trunk`, each objective's design note
says how and why).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from harness.errors import HarnessError
from harness.model.export import export_names
from harness.model.mtp_model import MTPModel
from harness.model.pretrained_config import (
    check_weights,
    missing_dir_error,
    read_config,
    safetensors_header,
    shape_problem,
)

MTP_WEIGHTS = "mtp_heads.safetensors"
# Tensors a Llama checkpoint may hold that are not weights (older transformers saved RoPE's table).
_NOT_WEIGHTS = ("rotary_emb.inv_freq",)


def load_pretrained(model: MTPModel, directory: Path) -> str:
    """Fill `model` from the checkpoint in `directory`; returns where the objective's own
    parameters came from ("checkpoint", "trunk" or "none")."""
    directory = Path(directory)
    if not directory.is_dir():
        raise missing_dir_error(str(directory), directory)
    config = read_config(directory)
    problem = shape_problem(model.model_cfg.model_dump(), config, model.objective_cfg, directory)
    if problem is not None:
        raise problem
    names = export_names(model)
    wanted = {key: name for key, (file, name) in names.items() if file == "model" and name is not None}
    _copy(model, directory, wanted, _locations(directory))
    own = {key: name for key, (file, name) in names.items() if file == "mtp"}
    if not own:
        return "none"
    if _own_tensors_match(directory, own, model):
        _copy(model, directory, own, {name: directory / MTP_WEIGHTS for name in own.values()})
        return "checkpoint"
    model.objective_cfg.init_from_trunk(model.objective, model.trunk)
    return "trunk"


def _locations(directory: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file that holds it (one file, or the index's shards)."""
    where = {}
    for path in check_weights(directory):
        for name in safetensors_header(path):
            if name != "__metadata__":
                where[name] = path
    return where


def _copy(model: MTPModel, directory: Path, wanted: dict[str, str], where: dict[str, Path]) -> None:
    """Copy each checkpoint tensor into the parameter it names, after checking that the files
    hold exactly these tensors with these shapes."""
    from safetensors import safe_open

    missing = sorted(set(wanted.values()) - set(where))
    extra = sorted(n for n in set(where) - set(wanted.values()) if not n.endswith(_NOT_WEIGHTS))
    if missing or extra:
        raise HarnessError(
            f"model.init_from {directory}: the weights do not match its config.json as a Llama model "
            f"(missing {missing[:3]}, unexpected {extra[:3]})",
            fix="export or save the checkpoint again; a Llama checkpoint holds model.* and lm_head.weight",
        )
    state = model.state_dict()
    by_file = defaultdict(list)
    for key, name in wanted.items():
        by_file[where[name]].append((key, name))
    with torch.no_grad():
        for path, pairs in sorted(by_file.items()):
            with safe_open(str(path), framework="pt") as handle:
                for key, name in pairs:
                    tensor = handle.get_tensor(name)
                    if tuple(tensor.shape) != tuple(state[key].shape):
                        raise HarnessError(
                            f"{path}: {name} has shape {tuple(tensor.shape)}, but config.json makes it "
                            f"{tuple(state[key].shape)}",
                            fix="use the config.json that was saved with these weights",
                        )
                    state[key].copy_(tensor)


def _own_tensors_match(directory: Path, own: dict[str, str], model: MTPModel) -> bool:
    """The checkpoint holds exactly this objective's tensors (a harness export of the same
    objective): same names, same shapes."""
    path = directory / MTP_WEIGHTS
    if not path.is_file():
        return False
    header = {k: v for k, v in safetensors_header(path).items() if k != "__metadata__"}
    state = model.state_dict()
    return set(header) == set(own.values()) and all(
        list(header[name]["shape"]) == list(state[key].shape) for key, name in own.items())



def frozen_from_checkpoint(model: MTPModel, trained: dict, directory: Path, freeze: str) -> dict:
    """`trained` (a training checkpoint's fp32 state dict) with every parameter `train.freeze`
    froze taken from the pretrained checkpoint itself: bit for bit what the run started from,
    whatever precision it trained in (bf16 training holds a rounded copy of frozen weights, and
    ZeRO-1 checkpoints keep only what the optimiser updates). `model` is fresh; it is loaded."""
    from torch import nn

    load_pretrained(model, directory)
    model.freeze(freeze)
    state = model.state_dict(keep_vars=True)
    frozen = {key: value.detach() for key, value in state.items()
              if isinstance(value, nn.Parameter) and not value.requires_grad}
    return {**trained, **frozen}
