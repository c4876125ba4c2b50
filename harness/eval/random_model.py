"""A random-initialised Llama causal LM directory, for smoke tests and the eval benchmark.

It exercises exactly what `harness eval` reads (config.json, safetensors weights, a fast
tokenizer) without a trained model or a hub download. Its pass@k is ~0, as expected.
The tokenizer is a byte-level BPE trained in a second on the packaged HumanEval and MBPP
prompts, so it encodes code sensibly and decodes any id it knows.
"""

from __future__ import annotations

from pathlib import Path

LAPTOP_SHAPE = dict(  # the laptop recipes' trunk (recipes/base.yaml)
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


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from harness.eval import benchmarks

    corpus = [p["prompt"] + p["canonical_solution"] for p in benchmarks.humaneval()]
    corpus += [p["text"] + "\n" + p["code"] for p in benchmarks.mbpp()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=EOS)
