"""DeepSeek-style exports in GLM-4.5's layout: an unmodified transformers loads the model with
its MTP module, its logits equal ours, and `generate(use_mtp=True)` drafts with our module
and returns plain greedy decoding's output."""

from __future__ import annotations

import json

import pytest
import torch

from harness.model.export import export_hf
from harness.model.export_mtp import SUBDIR
from tests.model.conftest import make, objective, rows, tiny_trunk


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _export(tmp_path, tokenizer_dir, trained: bool = False, **trunk):
    model = make(tiny_trunk(**trunk), objective("deepseek", depth=1))
    if trained:
        _learn_a_cycle(model)
    return model.eval(), export_hf(model, tmp_path / "export", tokenizer_dir)


def _learn_a_cycle(model, period: int = 7, steps: int = 80) -> None:
    """A few steps on one repeating sequence, so that the module's drafts get accepted."""
    cycle = torch.arange(period) * 11 + 3
    row = cycle.repeat(8)[: model.objective_cfg.row_length(16)]
    batch = torch.stack([row.roll(-i) for i in range(period)])  # (7, 18): every phase of the cycle
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(batch).loss.backward()
        optimizer.step()


@pytest.mark.parametrize("tied", [False, True])
def test_transformers_loads_the_module_and_its_logits_equal_ours(tied, tokenizer_dir, tmp_path):
    from transformers import AutoModelForCausalLM
    from transformers.modeling_layers import MtpModel

    model, out = _export(tmp_path, tokenizer_dir, tie_embeddings=tied)
    hf, info = AutoModelForCausalLM.from_pretrained(str(out / SUBDIR), output_loading_info=True)
    assert type(hf).__name__ == "Glm4MoeForCausalLM" and hf.config.num_nextn_predict_layers == 1
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    x = rows(objective("stp"), S=20, B=2)
    with torch.no_grad():
        assert (hf(x).logits - model.next_token_logits(x)).abs().max().item() < 1e-5
        mtp = MtpModel.from_pretrained(hf)  # what generate(use_mtp=True) builds; raises on missing weights
        ours = model.objective.layers[0]
        assert torch.equal(mtp.layers[0].eh_proj.weight, ours.eh_proj.weight)
        assert torch.equal(mtp.layers[0].post_norm.weight, ours.shared_head.norm.weight)
        # teacher-forced: module 1 at the last position reads h^0 there and the next token
        S = x.shape[1] - 1
        h0 = hf(x[:, :S], output_hidden_states=True).hidden_states[-1]  # pre-norm: tie_last_hidden_states false
        theirs = mtp(input_ids=x[:, 1 : S + 1], last_hidden_states=h0, attention_mask=None,
                     position_ids=torch.arange(S)[None].expand(2, -1), mtp_cache=None)[1][:, 0]  # fmt: skip
        expected = model.depth_logits(torch.cat([x, x[:, :1]], dim=1))[1][:, S - 1]
    assert (theirs - expected).abs().max().item() < 1e-4


def test_generate_with_use_mtp_is_plain_greedy(tokenizer_dir, tmp_path):
    """Done-when: generate(use_mtp=True) drafts with our module, output identical to greedy."""
    from transformers import AutoModelForCausalLM

    from harness.eval.analyses.speculative import decode

    model, out = _export(tmp_path, tokenizer_dir, trained=True)
    hf = AutoModelForCausalLM.from_pretrained(str(out / SUBDIR))
    calls = []
    hf.register_forward_hook(lambda *_: calls.append(1))
    prompt = torch.tensor([[3, 14, 25, 36, 47, 58, 69, 3, 14]])  # the cycle it learnt
    with torch.no_grad():
        plain = hf.generate(prompt, max_new_tokens=24, do_sample=False, eos_token_id=None)
        steps_plain, calls[:] = len(calls), []
        drafted = hf.generate(prompt, max_new_tokens=24, do_sample=False, eos_token_id=None, use_mtp=True)
    assert torch.equal(plain, drafted)
    assert steps_plain == 24 and len(calls) <= 14  # most of the module's drafts were accepted
    ours = decode(model, prompt[0].tolist(), 24, speculative=True)
    assert plain[0, prompt.shape[1] :].tolist() == ours.tokens
    assert abs(ours.steps - len(calls)) <= 1  # the same drafts accepted (transformers may count one more)


@pytest.mark.parametrize(("kind", "fields", "why"), [
    ("stp", {}, "no MTP module format"),
    ("meta", {"n": 2}, "no MTP module format"),
    ("deepseek", {"depth": 2}, "loads one GLM MTP layer"),
])  # fmt: skip
def test_other_objectives_say_why_there_is_none(kind, fields, why, tokenizer_dir, tmp_path):
    out = export_hf(make(tiny_trunk(), objective(kind, **fields)), tmp_path / "e", tokenizer_dir)
    info = json.loads((out / "mtp_config.json").read_text())["transformers_mtp"]
    assert info["written"] is False and why in info["reason"]
    assert not (out / SUBDIR).exists()


def test_padding_layers_are_identities_and_recorded(tokenizer_dir, tmp_path):
    _, out = _export(tmp_path, tokenizer_dir)
    info = json.loads((out / "mtp_config.json").read_text())["transformers_mtp"]
    assert info == {"written": True, "dir": SUBDIR, "architecture": "Glm4MoeForCausalLM", "num_hidden_layers": 46,
                    "identity_layers": 42, "mtp_layer": 46}  # fmt: skip
