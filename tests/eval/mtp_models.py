"""Small harness models for the analysis tests: random, hand-set ("copy") and quickly trained."""

from __future__ import annotations

from functools import lru_cache

import torch

from harness.model.config import TrunkConfig
from harness.model.mtp_model import build_model
from harness.model.objectives.deepseek import DeepSeekConfig
from harness.model.objectives.meta import MetaConfig
from harness.model.objectives.registry import objective_class
from harness.threads import torch_threads

VOCAB = 32
ARMS = {"meta2": MetaConfig(n=2), "meta4": MetaConfig(n=4), "deepseek1": DeepSeekConfig(depth=1)}


def trunk(vocab: int = VOCAB, d_model: int = 32, stp_layers: int = 4) -> TrunkConfig:
    return TrunkConfig(stp_layers=stp_layers, d_model=d_model, n_heads=2, n_kv_heads=1, ffn_hidden=64,
                       vocab_size=vocab, seq_len=16)  # fmt: skip


def objective(kind: str, **fields):
    return objective_class(kind)(**fields)


def random_model(objective_cfg, seed: int = 0, **trunk_fields):
    torch.manual_seed(seed)
    return build_model(trunk(**trunk_fields), objective_cfg).eval()


@torch.no_grad()
def copy_model(objective_cfg, vocab: int = 16):
    """Every block is the identity (zero residual outputs), embedding and unembedding are the
    identity (d_model = V): every Meta head guesses t_i for its target, the main path guesses
    t_i for t_{i+1}, and DeepSeek's modules (eh_proj = [I 0]) guess the token they read, t_{i+k}."""
    model = build_model(trunk(vocab=vocab, d_model=vocab), objective_cfg)
    eye = torch.eye(vocab)
    model.trunk.embed_tokens.weight.copy_(eye)
    model.trunk.lm_head.weight.copy_(eye)
    for name, module in model.named_modules():
        if name.endswith("self_attn"):
            module.o_proj.weight.zero_()
        elif name.endswith("mlp"):
            module.down_proj.weight.zero_()
        elif name.endswith("eh_proj"):
            module.weight.copy_(torch.cat([eye, torch.zeros(vocab, vocab)], dim=1))  # [emb; h] -> emb
    return model.eval()


PHRASES = [[5, 9, 2, 17, 30], [11, 4, 4, 23], [7, 19, 28, 3, 12, 6], [21, 8, 14]]


def phrase_corpus(n: int, seed: int) -> torch.Tensor:
    """Random sequence of four fixed phrases: predictable within a phrase, not at its end."""
    g, out = torch.Generator().manual_seed(seed), []
    while len(out) < n:
        out += PHRASES[int(torch.randint(0, len(PHRASES), (1,), generator=g))]
    return torch.tensor(out[:n])


@lru_cache(maxsize=None)
def trained_model(arm: str, steps: int = 60):
    """One of ARMS trained on the phrase corpus for a few seconds: its extra depths guess
    right often, so drafts are partly accepted (the interesting case for the decoder)."""
    objective_cfg = ARMS[arm]
    model = random_model(objective_cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    data, R = phrase_corpus(4000, 1), objective_cfg.row_length(16)
    g = torch.Generator().manual_seed(2)
    with torch_threads(1):
        for _ in range(steps):
            starts = torch.randint(0, len(data) - R, (16,), generator=g).tolist()
            loss = model(torch.stack([data[i : i + R] for i in starts])).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def training_path_position_losses(model, rows: torch.Tensor) -> torch.Tensor:
    """(B, S): -log p(t_{i+1}) at each input position from the *training* path's next-token
    logits on the objective's own rows (depth 1 of `depth_logits`), by log-softmax and a
    lookup in float64: an oracle independent of `eval.position_loss`, which decodes plain
    rows of S+1 tokens through the next-token path."""
    logits = model.depth_logits(rows)[0].double()  # (B, S, V)
    S = logits.shape[1]
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, rows[:, 1 : S + 1].unsqueeze(-1)).squeeze(-1)
