"""Memory-efficient Meta heads hold one head's logits at a time, not n (measured, not assumed),
and the benchmark script runs end to end at a tiny size."""

from __future__ import annotations

from benchmarks.bench_model import main, step_excursion
from tests.model.conftest import make, objective, rows, tiny_trunk


def _excursion(cfg, model_cfg) -> int:
    model = make(model_cfg, cfg)
    x = rows(cfg, S=64, B=4, vocab=model_cfg.vocab_size)

    def step():
        model.zero_grad(set_to_none=True)
        model(x).loss.backward()

    step()
    return step_excursion(step)


def test_memory_efficient_heads_lower_the_peak_when_logits_dominate():
    model_cfg = tiny_trunk(vocab_size=4096, seq_len=64)  # logits (4, 64, 4096) dwarf the rest
    naive = _excursion(objective("meta", n=4, memory_efficient=False), model_cfg)
    efficient = _excursion(objective("meta", n=4, memory_efficient=True), model_cfg)
    stp = _excursion(objective("stp"), model_cfg)
    logits = 4 * 64 * 4096 * 4
    assert naive - efficient > 2 * logits  # at least two heads' logits fewer alive at once
    assert efficient < 1.3 * stp


def test_benchmark_script_prints_its_table(capsys):
    main(["--layers", "4", "--d-model", "16", "--heads", "2", "--kv-heads", "1", "--ffn", "32",
          "--vocab", "64", "--seq-len", "8", "--batch", "1", "--steps", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert "meta4-efficient" in out and "meta n=4 efficient vs naive: peak" in out
