"""One preparation, in three passes over the source: (1) read, decontaminate and assign each
document to train or validation by its hash; (2) train the tokenizer on the training split;
(3) tokenise both splits into shards. Passes re-read the source instead of holding the
corpus in memory; pass 1 leaves one byte per document saying where it goes."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from harness.data.config import DataConfig
from harness.data.decontaminate import Decontaminator
from harness.data.documents import CorpusSource, ReadStats
from harness.data.shards import ShardWriter, token_dtype, write_shards
from harness.data.tokenizer import load_pretrained, save_tokenizer, train_bpe, vocabulary_tokenizer
from harness.errors import HarnessError
from harness.hashing import seed_bytes, sha256_directory

DROP, TRAIN, VAL = 0, 1, 2
SPLITS = {TRAIN: "train", VAL: "val"}


def split_score(text: str) -> float:
    """Where a document falls in [0, 1): a function of its text alone, so adding documents never
    moves another one between splits, and duplicates always land together."""
    digest = seed_bytes(text)
    return int.from_bytes(digest[:8], "big") / 2**64


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        yield progress


def plan_documents(source: CorpusSource, cfg: DataConfig, console: Console):
    """Pass 1: (plan bytes, read stats, decontaminator) with every document's destination."""
    decon = Decontaminator(cfg.decontaminate)
    stats, plan = ReadStats(), bytearray()
    first_train = (2.0, -1)  # (score, index) of the train document closest to the val range
    with _progress(console) as progress:
        task = progress.add_task("reading and decontaminating", total=None)
        for doc in source.documents(stats):
            progress.advance(task)
            if not doc.text.strip():
                stats.empty += 1
                plan.append(DROP)
            elif not decon.keep(doc.id, doc.text):
                plan.append(DROP)
            else:
                score = split_score(doc.text)
                plan.append(VAL if score < cfg.val_fraction else TRAIN)
                if plan[-1] == TRAIN:
                    first_train = min(first_train, (score, len(plan) - 1))
    _check_plan(plan, stats, decon, first_train[1])
    return plan, stats, decon


def _check_plan(plan: bytearray, stats: ReadStats, decon: Decontaminator, first_train: int) -> None:
    kept = plan.count(TRAIN) + plan.count(VAL)
    if kept == 0:
        dropped = len(decon.report.dropped)
        raise HarnessError(
            f"the corpus is empty: {len(plan) + len(stats.non_utf8)} documents read, {len(stats.non_utf8)} "
            f"not UTF-8, {stats.empty} empty, {dropped} dropped by decontamination",
            fix="point data.source at files with text in them",
        )
    if plan.count(VAL) == 0 and plan.count(TRAIN) > 1:
        # Few documents and none hashed below val_fraction: the train document with the lowest
        # score moves, so a tiny corpus still validates (the same one on every run).
        plan[first_train] = VAL
    if plan.count(TRAIN) == 0 or plan.count(VAL) == 0:
        raise HarnessError(
            f"the corpus has {kept} usable document(s); a train and a validation split need at least 2",
            fix="add documents",
        )


def _planned(source: CorpusSource, plan: bytearray, wanted: set[int]) -> Iterator[tuple[str, str]]:
    for index, doc in enumerate(source.documents(ReadStats())):
        if plan[index] in wanted:
            yield SPLITS[plan[index]], doc.text


def make_tokenizer(source, plan, cfg: DataConfig, vocab_size: int, base_dir: Path, out: Path, console):
    """Pass 2: (tokenizer backend, eos id, eos token) saved under `out`."""
    if cfg.tokenizer.kind == "pretrained":
        wrapped, backend = load_pretrained(cfg.tokenizer, base_dir, vocab_size)
        wrapped.save_pretrained(str(out))
        return backend, wrapped.eos_token_id, wrapped.eos_token
    if cfg.tokenizer.kind == "vocabulary":
        backend = vocabulary_tokenizer(source.vocabulary(), cfg.tokenizer, vocab_size)
        save_tokenizer(backend, cfg.tokenizer.eos_token, out)
        return backend, backend.token_to_id(cfg.tokenizer.eos_token), cfg.tokenizer.eos_token
    texts = (text for _, text in _planned(source, plan, {TRAIN}))
    with console.status("training the BPE tokenizer"):
        backend = train_bpe(texts, cfg.tokenizer, vocab_size, n_docs=plan.count(TRAIN))
    eos_token = cfg.tokenizer.special_tokens[0]
    save_tokenizer(backend, eos_token, out)
    return backend, backend.token_to_id(eos_token), eos_token


def build(out: Path, cfg: DataConfig, source, vocab_size: int, base_dir: Path, console: Console):
    """Prepare into `out`; returns (manifest, extras for the other files)."""
    clock = {"start": time.time()}
    plan, stats, decon = plan_documents(source, cfg, console)
    clock["read"] = time.time()
    backend, eos_id, eos_token = make_tokenizer(source, plan, cfg, vocab_size, base_dir, out / "tokenizer", console)
    clock["tokenizer"] = time.time()
    dtype = token_dtype(vocab_size)
    writers = {name: ShardWriter(out, name, dtype, cfg.shard_tokens) for name in SPLITS.values()}
    with _progress(console) as progress:
        task = progress.add_task("tokenising", total=plan.count(TRAIN) + plan.count(VAL))
        write_shards(backend, _planned(source, plan, {TRAIN, VAL}), writers, eos_id,
                     lambda n: progress.advance(task, n))
    clock["shards"] = time.time()
    splits = {name: writer.close() for name, writer in writers.items()}
    manifest = {
        "source": {"kind": cfg.source.kind, "documents": len(plan), "skipped_non_utf8": len(stats.non_utf8),
                   "skipped_empty": stats.empty},
        "decontamination": decon.report.summary(),
        "split": {"rule": "sha256(text)[:8] / 2^64 < val_fraction", "val_fraction": cfg.val_fraction},
        "tokenizer": {"kind": cfg.tokenizer.kind, "hash": sha256_directory(out / "tokenizer"),
                      "vocab_size": backend.get_vocab_size(), "eos_id": eos_id, "eos_token": eos_token},
        "dtype": dtype.name,
        "splits": splits,
    }
    if hasattr(source, "write_eval_sets"):  # a probe: its test set beside the shards, never in them
        manifest["probe"] = source.write_eval_sets(out)
    seconds = {"read_decontaminate": clock["read"] - clock["start"], "tokenizer": clock["tokenizer"] - clock["read"],
               "tokenise": clock["shards"] - clock["tokenizer"]}
    tokens = sum(s["tokens"] for s in splits.values())
    console.print(
        f"data: {len(plan)} documents, {len(decon.report.dropped)} dropped by decontamination, "
        f"{tokens:,} tokens ({tokens / max(seconds['tokenise'], 1e-9):,.0f} tokens/s); "
        + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()),
        soft_wrap=True,
    )
    extras = {"source": {"skipped_non_utf8": stats.non_utf8}, "decontamination": decon.report.to_json(),
              "seconds": {k: round(v, 2) for k, v in seconds.items()}}
    return manifest, extras
