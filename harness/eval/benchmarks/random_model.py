"""A random-initialised Llama causal LM directory, for smoke tests and the eval benchmark.

It exercises exactly what `harness eval` reads (config.json, safetensors weights, a fast
tokenizer) without a trained model or a hub download. Its pass@k is ~0, as expected.
The tokenizer is a byte-level BPE trained in a second on the packaged HumanEval and MBPP
prompts, so it encodes code sensibly and decodes any id it knows.

A random model never writes a stop sequence, so it always generates max_gen_toks tokens.
`build_code_model` trains one for a few seconds on the same text: its greedy completions
look like code and end at different stop strings (or none), as a real model's do, which is
what the evaluation's stop handling must get right. Neither says anything about skill.
"""

from __future__ import annotations

from pathlib import Path

LAPTOP_SHAPE = dict(  # the laptop recipes' trunk (recipes/laptop/base.yaml)
    num_hidden_layers=6, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=352, vocab_size=4096,
)  # fmt: skip
EOS = "<|endoftext|>"


def build_random_model(directory: Path, *, seed: int = 0, max_positions: int = 2048, **shape) -> Path:
    """Write a random LlamaForCausalLM plus tokenizer to `directory`; `shape` overrides
    LlamaConfig fields (defaults: LAPTOP_SHAPE)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    shape = {**LAPTOP_SHAPE, **shape}
    tokenizer = _train_tokenizer(shape["vocab_size"])
    config = LlamaConfig(
        **shape,
        max_position_embeddings=max_positions,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_code_model(directory: Path, *, steps: int = 300, seed: int = 0, **shape) -> Path:
    """`build_random_model`, then `steps` AdamW steps on the packaged HumanEval and MBPP text
    (64-token windows, batch 8): deterministic for a seed and thread count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = build_random_model(directory, seed=seed, **shape)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
    ids = torch.tensor(tokenizer(EOS.join(_corpus())).input_ids)
    windows = ids[: len(ids) // 65 * 65].view(-1, 65)  # (N, 65): 64 inputs and their targets
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = windows[torch.randint(len(windows), (8,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(directory)
    return directory


def _corpus() -> list[str]:
    from harness.data import benchmarks

    corpus = [p["prompt"] + p["canonical_solution"] for p in benchmarks.humaneval()]
    return corpus + [p["text"] + "\n" + p["code"] for p in benchmarks.mbpp()]


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = _corpus()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=EOS)
