"""Starting from a pretrained checkpoint (`model/pretrained.py`): a Llama directory's weights
land where an export would have written them, read lazily (one tensor at a time from mapped
files, sharded or not), every objective's next-token path equals the checkpoint's bit for bit,
each objective initialises its own parameters from the trunk, and bad checkpoints are refused
in one line with the fix. `train.freeze` leaves exactly the counted parameters trainable."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from harness.errors import HarnessError
from harness.model.config import TrunkConfig
from harness.model.export import export_hf
from harness.model.mtp_model import MTPModel
from harness.model.objectives.registry import objective_class, registered
from harness.model.pretrained import frozen_from_checkpoint, load_pretrained
from tests.model.conftest import make, objective, rows, tiny_trunk

N_LAYERS = 3  # the checkpoint's next-token layers


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer_dir):
    """A trained-looking STP model exported as a Llama directory (weights perturbed from the
    init so that no parameter is at its default: norms away from one)."""
    model = make(tiny_trunk(stp_layers=N_LAYERS), objective("stp"), seed=7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model, export_hf(model, tmp_path_factory.mktemp("ckpt") / "export", tokenizer_dir)


def on_checkpoint(cfg, seed: int = 1) -> MTPModel:
    """A fresh model of objective `cfg` whose next-token path has N_LAYERS layers."""
    return make(tiny_trunk(stp_layers=cfg.stp_layers_for(N_LAYERS)), cfg, seed=seed)


def ids() -> torch.Tensor:
    return rows(objective("stp"), S=14, B=2)


@pytest.mark.parametrize("kind", registered())
def test_every_objective_starts_with_the_checkpoints_next_token_model_bit_for_bit(kind, checkpoint):
    source, path = checkpoint
    cfg = objective_class(kind)(**objective_class(kind).example)
    model = on_checkpoint(cfg)
    own = load_pretrained(model, path)
    assert own == ("none" if not any(True for _ in model.objective.parameters()) else "trunk")
    with torch.no_grad():
        assert torch.equal(model.next_token_logits(ids()), source.next_token_logits(ids()))


def test_deepseek_modules_and_meta_heads_start_from_the_last_layer(checkpoint):
    _, path = checkpoint
    deepseek = on_checkpoint(objective("deepseek", depth=2))
    load_pretrained(deepseek, path)
    last = deepseek.trunk.layers[-1].state_dict()
    for layer in deepseek.objective.layers:
        assert all(torch.equal(v, last[k]) for k, v in layer.block.state_dict().items())
        assert torch.equal(layer.shared_head.norm.weight, deepseek.trunk.norm.weight)
        assert torch.equal(layer.enorm.weight, torch.ones_like(layer.enorm.weight))
    meta = on_checkpoint(objective("meta", n=3))
    load_pretrained(meta, path)
    assert len(meta.trunk.layers) == N_LAYERS - 1  # the checkpoint's last layer is head 1
    first = meta.objective.heads[0].state_dict()
    for head in meta.objective.heads[1:]:
        assert all(torch.equal(v, first[k]) for k, v in head.state_dict().items())


def test_an_export_of_the_same_objective_continues_with_its_own_mtp_tensors(tokenizer_dir, tmp_path):
    trained = make(tiny_trunk(stp_layers=N_LAYERS), objective("deepseek", depth=1), seed=3)
    path = export_hf(trained, tmp_path / "ds", tokenizer_dir)
    model = on_checkpoint(objective("deepseek", depth=1))
    assert load_pretrained(model, path) == "checkpoint"
    want = trained.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())


def _transformers_llama(tmp_path, tokenizer_dir, shard: str | None):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=N_LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                         rms_norm_eps=1e-5, tie_word_embeddings=False)
    hf = LlamaForCausalLM(config).eval()
    out = tmp_path / "llama"
    hf.save_pretrained(str(out), **({"max_shard_size": shard} if shard else {}))
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return hf, out


@pytest.mark.parametrize("shard", [None, "40KB"])
def test_a_transformers_llama_directory_loads_lazily_with_its_logits(shard, tokenizer_dir, tmp_path, monkeypatch):
    import safetensors.torch

    hf, path = _transformers_llama(tmp_path, tokenizer_dir, shard)
    assert (path / "model.safetensors.index.json").is_file() == (shard is not None)

    def whole_file(*args, **kwargs):
        raise AssertionError("a whole weight file was read into memory")

    monkeypatch.setattr(safetensors.torch, "load_file", whole_file)
    model = make(TrunkConfig(stp_layers=N_LAYERS, d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=64,
                             vocab_size=300, seq_len=16), objective("stp"))
    load_pretrained(model, path)
    with torch.no_grad():
        assert (hf(ids()).logits - model.next_token_logits(ids())).abs().max() < 1e-5


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "fix: " in text, text
    return text


def _copy(path, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(path, out)
    return out


def test_a_shape_the_config_does_not_have_is_refused(checkpoint):
    _, path = checkpoint
    model = make(tiny_trunk(stp_layers=N_LAYERS, d_model=48, n_heads=4, n_kv_heads=2), objective("stp"))
    with pytest.raises(HarnessError) as exc:
        load_pretrained(model, path)
    line = _one_line(exc)
    assert "model.d_model 48" in line and "hidden_size 32" in line and "set it to 32" in line


def test_weights_that_do_not_match_the_config_are_refused(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    _, path = checkpoint
    broken = _copy(path, tmp_path)
    tensors = load_file(str(broken / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(broken / "model.safetensors"))
    with pytest.raises(HarnessError) as exc:
        load_pretrained(on_checkpoint(objective("stp")), broken)
    assert "missing ['model.layers.1.mlp.up_proj.weight']" in _one_line(exc)


def test_a_truncated_safetensors_file_is_refused(checkpoint, tmp_path):
    _, path = checkpoint
    broken = _copy(path, tmp_path)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(HarnessError) as exc:
        load_pretrained(on_checkpoint(objective("stp")), broken)
    assert "not a readable safetensors file" in _one_line(exc)


def test_a_model_that_is_not_llama_is_refused(checkpoint, tmp_path):
    _, path = checkpoint
    other = _copy(path, tmp_path)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "qwen2", "attention_bias": True}))
    with pytest.raises(HarnessError) as exc:
        load_pretrained(on_checkpoint(objective("stp")), other)
    assert "model_type 'qwen2'" in _one_line(exc)


@pytest.mark.parametrize("freeze", ["none", "trunk", "trunk_and_unembedding"])
@pytest.mark.parametrize("kind", registered())
def test_freeze_leaves_exactly_the_counted_parameters_trainable(kind, freeze):
    cfg = objective_class(kind)(**objective_class(kind).example)
    trunk = tiny_trunk(stp_layers=cfg.stp_layers_for(N_LAYERS))
    model = make(trunk, cfg)
    model.freeze(freeze)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == cfg.trainable_params(trunk, freeze)
    next_token = [model.trunk.embed_tokens, *model.next_token_layers(), model.trunk.norm]
    assert all(p.requires_grad == (freeze == "none") for m in next_token for p in m.parameters())
    assert model.trunk.lm_head.weight.requires_grad == (freeze != "trunk_and_unembedding")


def test_an_export_takes_frozen_weights_from_the_checkpoint_itself(checkpoint):
    """bf16 training holds rounded copies of frozen weights: the export must not."""
    source, path = checkpoint
    model = on_checkpoint(objective("deepseek", depth=1))
    load_pretrained(model, path)
    trained = {k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()}
    fresh = on_checkpoint(objective("deepseek", depth=1), seed=5)
    state = frozen_from_checkpoint(fresh, trained, path, "trunk_and_unembedding")
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(fresh.next_token_logits(ids()), source.next_token_logits(ids()))
    assert torch.equal(state["objective.layers.0.eh_proj.weight"], trained["objective.layers.0.eh_proj.weight"])
