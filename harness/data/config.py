"""The `data:` section of a recipe: where text comes from and how it becomes token windows."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.config_tree import kind_union
from harness.data.synthetic.config import InductionSource, PolynomialSource


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StdlibSource(_Section):
    """The embedded default: the running interpreter's standard library sources (offline).

    CPython's own test suites (`test/`, `tests/`, `idle_test/`) are left out by default: they
    are 60% of the bytes, hold deliberately broken inputs (Python 2 files, non-UTF-8 and
    generated data) and would double preparation time on a laptop. Files generated at build
    time (`_sysconfigdata_*.py`, `config-*/`) are always left out: they hold install paths, so
    two machines with the same Python version would otherwise see different corpora.
    """

    kind: Literal["stdlib"] = "stdlib"
    max_files: int | None = Field(default=None, ge=1, description="first N files in sorted order")
    max_bytes: int | None = Field(
        default=None, ge=1, description="stop before the file that would pass this many bytes (sorted order)"
    )
    include_tests: bool = Field(default=False, description="also take CPython's test suites (see above)")


class LocalSource(_Section):
    """Files on disk: text/code files, or JSONL/Parquet records with a text field."""

    kind: Literal["local"] = "local"
    path: str = Field(description="a file, a directory, or a glob (relative to the recipe's directory)")
    format: Literal["text", "jsonl", "parquet"] = "text"
    text_field: str = "text"
    max_docs: int | None = Field(default=None, ge=1, description="first N documents in file order")


class HFSource(_Section):
    """A Hugging Face dataset at a pinned revision; works offline from a local copy or cache."""

    kind: Literal["hf"] = "hf"
    name: str
    config: str | None = None
    split: str = "train"
    revision: str = Field(description="required: a commit sha or tag, so the data cannot drift")
    text_field: str = "text"
    streaming: bool = False
    local_path: str | None = Field(default=None, description="a `save_to_disk` copy to read instead of the hub")
    max_docs: int | None = Field(default=None, ge=1)


Source = kind_union(StdlibSource, LocalSource, HFSource, InductionSource, PolynomialSource)
# Sources that generate text from a fixed vocabulary (the synthetic probes).
PROBE_SOURCES = ("induction", "polynomial")


class BPETokenizer(_Section):
    """Train a byte-level BPE on the training split (deterministic); vocab = model.vocab_size."""

    kind: Literal["bpe"] = "bpe"
    special_tokens: list[str] = Field(
        default=["<|endoftext|>"], min_length=1, description="the first is EOS, put between documents"
    )
    min_frequency: int = Field(default=2, ge=1)


class PretrainedTokenizer(_Section):
    """A Hugging Face fast tokenizer by local path, or hub id plus pinned revision (read from
    the local HF cache only: nothing is downloaded at run time)."""

    kind: Literal["pretrained"] = "pretrained"
    path: str
    revision: str | None = None


class VocabularyTokenizer(_Section):
    """One token per whitespace-separated word of the source's fixed vocabulary (the synthetic
    probes): a name written as two words is exactly two tokens and every arithmetic symbol is
    one token, which a BPE cannot promise. Ids: EOS 0, unknown 1, then the vocabulary."""

    kind: Literal["vocabulary"] = "vocabulary"
    eos_token: str = "<|endoftext|>"
    unk_token: str = "<unk>"


Tokenizer = kind_union(BPETokenizer, PretrainedTokenizer, VocabularyTokenizer)


class Decontamination(_Section):
    """Drop training documents that share a long n-gram with a benchmark (see decontaminate.py)."""

    enabled: bool = True
    ngram: int = Field(
        default=13, ge=4, description="a document sharing this many consecutive words of code (identifiers, "
        "keywords, numbers; punctuation and layout ignored) with a benchmark is dropped",
    )
    benchmarks: list[Literal["humaneval", "mbpp"]] = ["humaneval", "mbpp"]


class SelfDistill(_Section):
    """Training targets from the frozen checkpoint's own greedy continuations (FastMTP, 2025):
    each training window keeps its first `prompt_tokens` corpus tokens and the rest is what
    `model.init_from` generates greedily after them, so post-hoc heads learn to predict what
    the model itself would say next, which is what self-speculative decoding accepts.
    Validation and evaluation stay on the corpus. Needs `model.init_from`."""

    prompt_tokens: int = Field(default=32, ge=1, description="corpus tokens kept at the start of each "
                               "training window; the rest of the window is generated")
    batch_size: int = Field(default=64, ge=1, description="windows generated at once (part of the cache "
                            "key: a batched matrix product may round differently from another batch size)")


class DataConfig(_Section):
    source: Source = StdlibSource()
    tokenizer: Tokenizer = BPETokenizer()
    decontaminate: Decontamination = Decontamination()
    val_fraction: float = Field(
        default=0.02, gt=0, lt=0.5, description="documents to validation, by document hash"
    )
    seq_len: int | None = Field(default=None, ge=8, description="training window S; default the model's seq_len")
    lookahead_reserve: int = Field(
        default=8, ge=1, description="windows are cut as if every arm predicted this many tokens, "
        "so arms with n <= this see identical inputs in identical order",
    )
    strict_utf8: bool = Field(default=False, description="fail on a non-UTF-8 file instead of skipping it")
    shard_tokens: int = Field(
        default=1 << 28, ge=1024, description="a new shard file starts once one holds this many tokens; "
        "shards end at document ends, so one can pass it by a document; 2^28 keeps a uint16 shard "
        "near 512 MiB",
    )
    self_distill: SelfDistill | None = Field(
        default=None, description="train on the checkpoint's greedy continuations of the corpus "
        "(post-hoc heads); see SelfDistill",
    )

    @model_validator(mode="after")
    def _probe_tokenizer(self) -> "DataConfig":
        probe, vocabulary = self.source.kind in PROBE_SOURCES, self.tokenizer.kind == "vocabulary"
        if probe and not vocabulary:
            raise ValueError(f"data.source.kind {self.source.kind} needs data.tokenizer.kind: vocabulary "
                             "(its metric assumes one token per word)")
        if vocabulary and not probe:
            raise ValueError(f"data.tokenizer.kind vocabulary needs a source with a fixed vocabulary "
                             f"({', '.join(PROBE_SOURCES)}), not {self.source.kind}")
        return self
