"""Export to a Hugging Face Llama directory: transformers' logits equal ours, the round trip
through `load_exported` is byte-identical, lm-eval's HFLM loads it, bad input is refused."""

from __future__ import annotations

import json

import pytest
import torch

from harness.errors import HarnessError
from harness.model.export import export_hf, load_exported
from tests.model.conftest import make, objective, rows, tiny_trunk

CASES = {
    "stp": ("stp", {}, {}),
    "stp-tied": ("stp", {}, {"tie_embeddings": True}),
    "meta": ("meta", {"n": 3}, {}),
    "deepseek": ("deepseek", {"depth": 2}, {}),
    "deepseek-truncate-tied": ("deepseek", {"depth": 1, "target_window": "truncate"}, {"tie_embeddings": True}),
    "top": ("top", {"window": 4}, {}),
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("case", CASES)
def test_transformers_logits_equal_harness_logits(case, tokenizer_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, fields, trunk = CASES[case]
    model = make(tiny_trunk(**trunk), objective(kind, **fields))
    out = export_hf(model, tmp_path / "export", tokenizer_dir)
    hf, info = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert hf.config.num_hidden_layers == len(model.next_token_layers())
    assert hf.config.max_position_embeddings == model.model_cfg.seq_len  # the trained context, no more
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ids = tokenizer("def add(a, b):\n    return a + b\n", return_tensors="pt").input_ids
    x = torch.cat([ids, rows(objective("stp"), S=20, B=1)], dim=1)  # a prompt, then 21 random ids
    with torch.no_grad():
        diff = (hf(x).logits - model.next_token_logits(x)).abs().max().item()
    assert diff < 1e-4


@pytest.mark.parametrize("case", CASES)
def test_export_reload_export_is_byte_identical(case, tokenizer_dir, tmp_path):
    kind, fields, trunk = CASES[case]
    cfg = objective(kind, **fields)
    model = make(tiny_trunk(**trunk), cfg)
    first = export_hf(model, tmp_path / "first", tokenizer_dir)
    reloaded = load_exported(first)
    second = export_hf(reloaded, tmp_path / "second", first)
    names = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(second)) for p in second.rglob("*") if p.is_file())
    assert ("mtp_heads.safetensors" in names) == (kind != "stp")
    assert ("transformers_mtp/model.safetensors" in names) == (kind == "deepseek" and fields["depth"] == 1)
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)
    x = rows(cfg)
    with torch.no_grad():
        a, b = model.depth_logits(x), reloaded.depth_logits(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # the MTP heads came back too


def test_deepseek_modules_use_the_v3_names(tokenizer_dir, tmp_path):
    from safetensors import safe_open

    model = make(tiny_trunk(), objective("deepseek", depth=2))
    out = export_hf(model, tmp_path / "e", tokenizer_dir)
    with safe_open(str(out / "mtp_heads.safetensors"), "pt") as f:
        keys = set(f.keys())
    for layer in (4, 5):  # the main model has layers 0-3; V3 numbers MTP layers after them
        for name in ("enorm", "hnorm", "eh_proj", "shared_head.norm", "self_attn.q_proj", "mlp.down_proj"):
            assert f"model.layers.{layer}.{name}.weight" in keys
    assert json.loads((out / "mtp_config.json").read_text())["objective"]["depth"] == 2


def test_lm_eval_loads_the_export_and_the_hf_backend_generates_past_its_context(tokenizer_dir, tmp_path):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from harness.eval.benchmarks.hf_backend import HarnessHFLM

    out = export_hf(make(tiny_trunk(), objective("meta", n=2)), tmp_path / "e", tokenizer_dir)
    lm = HFLM(pretrained=str(out), device="cpu", batch_size=1, dtype="float32")
    assert lm.max_length == 16  # lm-eval reads the trained context from the export
    ours = HarnessHFLM(pretrained=str(out), device="cpu", batch_size=1, dtype="float32", context_length=16)
    kwargs = {"until": ["\nclass"], "max_gen_toks": 1024}  # HumanEval's, far past a 16-token context
    request = Instance("generate_until", {}, ("def f(x):" * 10, kwargs), 0, ("t", 0, 1))
    assert isinstance(ours.generate_until([request])[0], str)
    assert ours.budgets == {"t": 8} and ours.truncated == {"t": {0}}  # half the context kept for the prompt


def test_bad_exports_are_refused(tokenizer_dir, tmp_path):
    model = make(tiny_trunk(vocab_size=64), objective("meta", n=2))
    with pytest.raises(HarnessError, match="the tokenizer has .* tokens but the model only 64"):
        export_hf(model, tmp_path / "small", tokenizer_dir)
    with pytest.raises(HarnessError, match="no tokenizer.json"):
        export_hf(model, tmp_path / "none", tmp_path)
    model = make(tiny_trunk(), objective("meta", n=2))
    out = export_hf(model, tmp_path / "e", tokenizer_dir)
    with pytest.raises(HarnessError, match="not empty"):
        export_hf(model, out, tokenizer_dir)
    other = export_hf(make(tiny_trunk(), objective("meta", n=3)), tmp_path / "other", tokenizer_dir)
    (out / "mtp_heads.safetensors").write_bytes((other / "mtp_heads.safetensors").read_bytes())
    with pytest.raises(HarnessError, match="mtp weights do not match"):
        load_exported(out)
    with pytest.raises(HarnessError, match="not a harness export"):
        load_exported(tmp_path)
