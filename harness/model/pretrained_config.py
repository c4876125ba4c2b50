"""A pretrained checkpoint as the recipe sees it (`model.init_from`): its shape read from its
config.json into the `model:` section, its tokenizer as the data's, and every refusal about
it in one line with the fix. Torch-free, like every config module: `harness plan` reads it.

The directory is a Hugging Face Llama directory: config.json (`model_type: llama`), weights
as `model.safetensors` or shards named by `model.safetensors.index.json`, and the tokenizer's
files. The harness's own exports are such directories (`model/export.py`). Nothing is ever
downloaded: a path that is not a directory here is refused, with the command that fetches a
hub model where there is network.

Where the recipe states a shape field, it must equal the checkpoint's; where it does not,
the checkpoint's value is filled in before validation, so the resolved recipe (and its hash)
holds the whole shape. If the directory is missing but the recipe states every shape field
(a recipe written before its checkpoint exists, as `recipes/finetune/` are), loading goes on
and the check runs again when training reads the weights (`model/pretrained.py`).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from harness.errors import HarnessError
from harness.hashing import sha256_parts

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
# TrunkConfig field -> (config.json key, Hugging Face LlamaConfig's default when absent or None).
# stp_layers comes from num_hidden_layers through the objective (`stp_layers_for`).
SHAPE = {
    "d_model": ("hidden_size", None),
    "n_heads": ("num_attention_heads", None),
    "n_kv_heads": ("num_key_value_heads", None),  # None: as many as the query heads (LlamaConfig)
    "ffn_hidden": ("intermediate_size", None),
    "vocab_size": ("vocab_size", None),
    "seq_len": ("max_position_embeddings", 2048),
    "norm_eps": ("rms_norm_eps", 1e-6),
    "rope_theta": ("rope_theta", 10000.0),
    "tie_embeddings": ("tie_word_embeddings", False),
}
SHAPE_FIELDS = ("stp_layers", *SHAPE)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def resolve_dir(base_dir: Path, init_from: str) -> Path:
    """`model.init_from` is relative to the recipe's directory (as `data.source.path` is)."""
    path = Path(init_from).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def missing_dir_error(init_from: str, directory: Path) -> HarnessError:
    if _HUB_NAME.match(init_from) and not init_from.startswith("."):
        return HarnessError(
            f"model.init_from {init_from!r} is not a directory here (looked for {directory}); if it is a "
            "Hugging Face hub name: the harness downloads nothing",
            fix=f"where there is network run `hf download {init_from} --local-dir DIR` and set model.init_from to DIR",
        )
    return HarnessError(f"model.init_from {init_from!r}: no such directory ({directory})",
                        fix="give a local Hugging Face directory (config.json, safetensors, tokenizer), "
                            "relative to the recipe's directory or absolute")


def read_config(directory: Path) -> dict:
    """The checkpoint's config.json, refused unless it describes a model our trunk computes."""
    path = directory / CONFIG
    if not path.is_file():
        raise HarnessError(f"model.init_from {directory}: no {CONFIG}",
                           fix="point it at a Hugging Face model directory (save_pretrained writes config.json)")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path} is not readable JSON ({exc})", fix="restore the checkpoint's config.json") from None
    problem = _not_llama(config)
    if problem:
        raise HarnessError(f"model.init_from {directory}: {problem}",
                           fix="start from a Llama-architecture checkpoint (or convert it to LlamaForCausalLM)")
    return config


def _not_llama(config: dict) -> str | None:
    """Why this config is not a model the trunk computes exactly, or None."""
    if config.get("model_type") != "llama":
        return f"model_type {config.get('model_type')!r} is not 'llama', the architecture the trunk reproduces"
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            return f"{key} is true; the trunk has no biases"
    if config.get("hidden_act", "silu") != "silu":
        return f"hidden_act {config['hidden_act']!r}; the trunk's SwiGLU uses silu"
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        return f"RoPE scaling {kind!r}; the trunk computes plain RoPE only"
    required = ("hidden_size", "num_attention_heads", "intermediate_size", "vocab_size", "num_hidden_layers")
    missing = [key for key in required if config.get(key) is None]
    if missing:
        return f"{CONFIG} lacks {', '.join(missing)}"
    head_dim = config.get("head_dim")
    if head_dim is not None and head_dim * config["num_attention_heads"] != config["hidden_size"]:
        return (f"head_dim {head_dim} x {config['num_attention_heads']} heads is not hidden_size "
                f"{config['hidden_size']}; the trunk's heads split d_model")
    return None


def checkpoint_shape(config: dict, objective) -> dict[str, tuple[object, str]]:
    """TrunkConfig field -> (value, where config.json says it) for an objective on this checkpoint."""
    out = {"stp_layers": (objective.stp_layers_for(config["num_hidden_layers"]), "num_hidden_layers")}
    rope = config.get("rope_parameters") or {}
    for field, (key, default) in SHAPE.items():
        value = config.get(key)
        if field == "rope_theta" and value is None:
            value = rope.get("rope_theta")
        if field == "n_kv_heads" and value is None:
            value = config["num_attention_heads"]
        out[field] = (default if value is None else value, key)
    return out


def shape_problem(stated: dict, config: dict, objective, directory: Path) -> HarnessError | None:
    """The first shape field the recipe states differently from the checkpoint, as an error."""
    for field, (value, key) in checkpoint_shape(config, objective).items():
        if field in stated and stated[field] != value:
            how = f"{key} {config.get('num_hidden_layers')} means {value} for {objective.label()}" \
                if field == "stp_layers" and value != config.get("num_hidden_layers") else f"{key} {value}"
            return HarnessError(
                f"model.{field} {stated[field]} conflicts with model.init_from {directory}, whose {CONFIG} "
                f"says {how}",
                fix=f"remove model.{field} from the recipe (the checkpoint sets it) or set it to {value}",
            )
    return None


def check_weights(directory: Path) -> list[Path]:
    """The safetensors files, each with a readable header whose tensors lie inside the file
    (a truncated or damaged file is refused here, before any training)."""
    index = directory / WEIGHTS_INDEX
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise HarnessError(f"{index} is not a safetensors index (no weight_map)",
                               fix="restore the checkpoint's index file") from None
        paths = [directory / name for name in files]
    elif (directory / WEIGHTS).is_file():
        paths = [directory / WEIGHTS]
    else:
        raise HarnessError(f"model.init_from {directory}: no {WEIGHTS} or {WEIGHTS_INDEX}",
                           fix="save the model with safetensors (save_pretrained does by default); .bin files are not read")
    for path in paths:
        safetensors_header(path)
    return paths


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file: name -> {dtype, shape, data_offsets}."""
    broken = HarnessError(f"{path} is not a readable safetensors file (truncated or damaged)",
                          fix="copy or export the checkpoint again")
    if not path.is_file():
        raise HarnessError(f"{path}: missing (named by the checkpoint's index)", fix="copy the checkpoint again")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise broken
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER, size - 8):
            raise broken
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            raise broken from None
    if not isinstance(header, dict):
        raise broken
    ends = [entry.get("data_offsets", [0, 0])[1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict)]
    if max(ends, default=0) > size - 8 - length:
        raise broken
    return header


def weights_identity(directory: Path, digest) -> str:
    """What a run that starts from this checkpoint records, so that it resumes only from the
    same weights: the sha256 of config.json and of every weight file (`digest(path)`, which may
    remember hashes by size and modification time, as data preparation does)."""
    files = [directory / CONFIG, *check_weights(directory)]
    mtp = directory / "mtp_heads.safetensors"
    return sha256_parts([(p.name, digest(p)) for p in files + ([mtp] if mtp.is_file() else [])])


def tokenizer_size(directory: Path) -> int | None:
    """Tokens a `tokenizer.json` defines (its vocabulary and added tokens), or None without one."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        vocab = data["model"]["vocab"]
        ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
        ids += [t["id"] for t in data.get("added_tokens") or []]
    except (OSError, ValueError, KeyError, TypeError):
        raise HarnessError(f"{path} is not a tokenizer the harness can read",
                           fix="save the tokenizer with save_pretrained (a fast tokenizer)") from None
    return max(ids) + 1 if ids else 0


def fill_model_section(data: dict, origins: dict[str, str], base_dir: Path) -> None:
    """A recipe's raw mapping (after extends and overrides), completed from `model.init_from`:
    the shape fields it does not state, `data.tokenizer` when unset; every conflict refused."""
    model = data.get("model")
    init_from = model.get("init_from") if isinstance(model, dict) else None
    if not isinstance(init_from, str):
        return  # unset (or not text: the schema says so)
    objective = _objective(data)
    directory = resolve_dir(base_dir, init_from)
    tokenizer = _data_tokenizer(data, init_from)
    for key in ("data.tokenizer.kind", "data.tokenizer.path"):
        origins.setdefault(key, "model.init_from (the checkpoint's tokenizer)")
    if not directory.is_dir():
        if _HUB_NAME.match(init_from) and not init_from.startswith(".") or any(f not in model for f in SHAPE_FIELDS):
            raise missing_dir_error(init_from, directory)
        return  # the shape is stated whole: checked again when training reads the weights
    config = read_config(directory)
    if problem := shape_problem(model, config, objective, directory):
        raise problem
    for field, (value, _) in checkpoint_shape(config, objective).items():
        if field not in model:
            model[field] = value
            origins[f"model.{field}"] = str(directory / CONFIG)
    check_weights(directory)
    if tokenizer is not None:
        _check_tokenizer(resolve_dir(base_dir, tokenizer), directory, model["vocab_size"])


def _objective(data: dict):
    """The recipe's objective config, or the default's where it does not validate yet (the
    recipe's own validation then says why)."""
    from harness.model.objectives.registry import default_objective, objective_config

    section = data.get("objective")
    try:
        return objective_config(section) if isinstance(section, dict) else default_objective()
    except HarnessError:
        return default_objective()


def _data_tokenizer(data: dict, init_from: str) -> str | None:
    """The path of the pretrained tokenizer the data will use: the checkpoint's unless the
    recipe names another. A tokenizer trained afresh cannot index a pretrained embedding."""
    section = data.setdefault("data", {}) if isinstance(data.get("data", {}), dict) else None
    if section is None:
        return None
    tokenizer = section.get("tokenizer")
    if tokenizer is None:
        section["tokenizer"] = {"kind": "pretrained", "path": init_from}
        return init_from
    if not isinstance(tokenizer, dict):
        return None
    if tokenizer.get("kind") != "pretrained":
        raise HarnessError(
            f"data.tokenizer.kind {tokenizer.get('kind')!r} makes a new tokenizer, but model.init_from's "
            "embedding rows are indexed by the checkpoint's own",
            fix=f"remove data.tokenizer (it then defaults to the checkpoint's) or set data.tokenizer "
                f"{{kind: pretrained, path: {init_from}}}",
        )
    return tokenizer.get("path") if tokenizer.get("revision") is None else None


def _check_tokenizer(tokenizer_dir: Path, directory: Path, vocab_size: int) -> None:
    if not tokenizer_dir.is_dir():
        return  # data preparation says so, with its own fix
    size = tokenizer_size(tokenizer_dir)
    if size is None and not (tokenizer_dir / "tokenizer.model").is_file():
        raise HarnessError(
            f"{tokenizer_dir} has no tokenizer.json or tokenizer.model, and the data must be tokenized as "
            f"the checkpoint was trained",
            fix=f"copy the checkpoint's tokenizer files into {tokenizer_dir}, or set data.tokenizer.path to them",
        )
    if size is not None and size > vocab_size:
        raise HarnessError(
            f"the tokenizer in {tokenizer_dir} has {size} tokens but model.init_from {directory} has "
            f"{vocab_size} embedding rows (vocab_size in {CONFIG}): it is not the checkpoint's tokenizer",
            fix="use the tokenizer the checkpoint was trained with",
        )
