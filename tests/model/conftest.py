"""Fixtures for model tests: a tiny trunk, rows of tokens, and a tiny Hugging Face tokenizer."""

from __future__ import annotations

import pytest
import torch

from harness.model.config import TrunkConfig
from harness.model.mtp_model import build_model
from harness.model.objectives.registry import objective_class

VOCAB = 300


def tiny_trunk(**overrides) -> TrunkConfig:
    fields = dict(stp_layers=4, d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=64, vocab_size=VOCAB, seq_len=16)
    fields.update(overrides)
    return TrunkConfig(**fields)


def objective(kind: str, **fields):
    return objective_class(kind)(**fields)


def make(model_cfg: TrunkConfig, objective_cfg, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(model_cfg, objective_cfg)


def rows(objective_cfg, S: int = 12, B: int = 3, vocab: int = VOCAB, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (B, objective_cfg.row_length(S)), generator=g)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every model test runs on one torch thread (tests/conftest.py: one_thread)."""


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A byte-level BPE trained on a few lines, saved as a Hugging Face fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 20,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    text = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n"] * 20
    tok.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    out = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(str(out))
    return out
