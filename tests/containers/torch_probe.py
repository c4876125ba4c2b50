"""A tiny deterministic training run: prints its per-step fp32 losses as exact hex floats.

Run by tests/containers/test_container_docker.py inside the image (twice) and on the host, to
compare bit for bit. One thread: the thread count changes the last bits (ENV-NOTES).
"""

import json
import sys

import torch


def main(steps: int = 12) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    vocab, dim, seq = 64, 32, 16
    model = torch.nn.Sequential(
        torch.nn.Embedding(vocab, dim),
        torch.nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True),
        torch.nn.Linear(dim, vocab),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    data = torch.randint(0, vocab, (8, seq + 1), generator=torch.Generator().manual_seed(1))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(seq)
    losses = []
    for _ in range(steps):
        logits = model[2](model[1](model[0](data[:, :-1]), src_mask=mask, is_causal=True))  # (B, S, V)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), data[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item().hex())
    json.dump({"torch": torch.__version__, "losses": losses}, sys.stdout)


if __name__ == "__main__":
    main()
