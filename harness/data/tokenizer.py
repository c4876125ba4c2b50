"""The tokenizer: a byte-level BPE trained on the training split, or a pretrained one,
saved as a Hugging Face fast tokenizer directory that loads offline with AutoTokenizer.

Training is deterministic: the `tokenizers` BPE trainer counts pairs in parallel but sums
the counts (order-free) and breaks ties between equally frequent pairs by the pair itself,
and documents arrive in the source's fixed order. Measured on the 12 MB standard library:
identical `tokenizer.json` bytes with RAYON_NUM_THREADS=1, 2 and unset, in separate
processes; `tests/data/test_data_tokenizer.py` checks it on every run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from harness.data.config import BPETokenizer, PretrainedTokenizer, VocabularyTokenizer
from harness.errors import HarnessError, one_line

BYTE_ALPHABET = 256


def check_bpe_vocab(cfg: BPETokenizer, vocab_size: int) -> None:
    need = BYTE_ALPHABET + len(cfg.special_tokens)
    if vocab_size < need:
        raise HarnessError(
            f"model.vocab_size {vocab_size} is too small for a byte-level BPE "
            f"({BYTE_ALPHABET} bytes + {len(cfg.special_tokens)} special tokens = {need})",
            fix=f"set model.vocab_size to at least {need}",
        )
    if len(set(cfg.special_tokens)) != len(cfg.special_tokens):
        raise HarnessError(f"data.tokenizer.special_tokens has duplicates: {cfg.special_tokens}")


def train_bpe(texts: Iterable[str], cfg: BPETokenizer, vocab_size: int, n_docs: int | None = None):
    """A byte-level BPE with exactly `vocab_size` entries; special tokens take ids 0.. in order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    check_bpe_vocab(cfg, vocab_size)
    tokenizer = Tokenizer(models.BPE())
    # No normalizer and no prefix space: decode(encode(text)) must give back the exact bytes.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(cfg.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer, length=n_docs)
    learnt = tokenizer.get_vocab_size()
    if learnt != vocab_size:
        raise HarnessError(
            f"the training split only supports a BPE of {learnt} tokens (pairs seen at least "
            f"{cfg.min_frequency} times ran out), not model.vocab_size {vocab_size}",
            fix="add data, lower data.tokenizer.min_frequency, or lower model.vocab_size",
        )
    return tokenizer


def vocabulary_tokenizer(words: list[str], cfg: VocabularyTokenizer, vocab_size: int):
    """A word-level tokenizer over a fixed vocabulary: whitespace split, one id per word, EOS 0
    and unknown 1 first. Decoding joins tokens with one space, so a text written with single
    spaces (as the probe generators write) round-trips exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    entries = [cfg.eos_token, cfg.unk_token, *words]
    repeated = sorted({w for w in entries if entries.count(w) > 1})
    if repeated or any(not w or w != w.strip() or len(w.split()) != 1 for w in entries):
        raise ValueError(f"a fixed vocabulary needs distinct single words; repeated: {repeated[:5]}")  # generator bug
    if len(entries) > vocab_size:
        raise HarnessError(
            f"the source's vocabulary has {len(entries)} tokens (with EOS and unknown) but model.vocab_size is {vocab_size}",
            fix=f"set model.vocab_size to at least {len(entries)}",
        )
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(entries)}, unk_token=cfg.unk_token))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins with spaces; no word has "##"
    tokenizer.add_special_tokens([cfg.eos_token, cfg.unk_token])
    return tokenizer


def save_tokenizer(tokenizer, eos_token: str, out: Path) -> None:
    """Write a fast-tokenizer directory (tokenizer.json + tokenizer_config.json)."""
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=eos_token, clean_up_tokenization_spaces=False
    )
    wrapped.save_pretrained(str(out))
    # transformers 5 writes its new class name, which 4.x cannot resolve; the old name is an
    # alias in 5.x, so it loads in both (pyproject allows transformers>=4.46).
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_pretrained(cfg: PretrainedTokenizer, base_dir: Path, vocab_size: int):
    """(fast tokenizer wrapper, its `tokenizers` backend) from a local dir or the HF cache only."""
    from transformers import AutoTokenizer

    local = Path(cfg.path) if Path(cfg.path).is_absolute() else base_dir / cfg.path
    if not local.exists() and cfg.revision is None:
        raise HarnessError(
            f"data.tokenizer.path {cfg.path!r} is not a local directory (looked for {local}), and a hub id "
            "needs a pinned revision",
            fix="set data.tokenizer.revision to a commit sha or tag, or fix the path",
        )
    where = str(local) if local.exists() else cfg.path
    try:
        wrapped = AutoTokenizer.from_pretrained(where, revision=cfg.revision, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise HarnessError(
            f"cannot load tokenizer {cfg.path!r} offline: {one_line(exc)}",
            fix="download it into the Hugging Face cache where there is network, or give a local path",
        ) from None
    if not wrapped.is_fast:
        raise HarnessError(f"tokenizer {cfg.path!r} has no fast (Rust) version", fix="use a fast tokenizer")
    if wrapped.eos_token_id is None:
        raise HarnessError(f"tokenizer {cfg.path!r} has no EOS token to put between documents")
    if len(wrapped) > vocab_size:
        raise HarnessError(
            f"tokenizer {cfg.path!r} has {len(wrapped)} tokens but model.vocab_size is {vocab_size}",
            fix=f"set model.vocab_size to at least {len(wrapped)}",
        )
    return wrapped, wrapped.backend_tokenizer


def encode_batches(tokenizer, texts: list[str]) -> Iterator[list[int]]:
    """Token ids of each text, encoded in parallel by the Rust tokenizer (no special-token
    template; special-token strings inside the text are encoded as plain text, so a file that
    contains "<|endoftext|>" cannot inject an EOS)."""
    tokenizer.encode_special_tokens = True
    for encoding in tokenizer.encode_batch_fast(texts, add_special_tokens=False):
        yield encoding.ids
