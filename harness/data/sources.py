"""Corpus sources: what documents a recipe's `data.source` names, in a fixed order, and
the identity (hashes, versions, revisions) that pins them down.

A source is read more than once (decontamination and split, tokenizer training,
tokenisation), so it streams documents instead of holding the corpus in memory: the same
code serves the laptop's 12 MB standard library and a cluster's pretraining shards.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

from harness.data.config import PROBE_SOURCES, DataConfig, LocalSource, StdlibSource
from harness.data.documents import CorpusSource, Digest, Document, ReadStats
from harness.errors import HarnessError
from harness.hashing import sha256_file

# Directories of CPython's own test suites (left out unless include_tests, see StdlibSource).
STDLIB_TEST_DIRS = frozenset({"test", "tests", "idle_test"})
# Never part of the standard library proper: third-party installs and build-time files.
STDLIB_NEVER_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


def _file_entries(files: list[Path], root: Path, digest: Digest) -> list[dict]:
    return [{"path": p.relative_to(root).as_posix(), "size": p.stat().st_size, "sha256": digest(p)} for p in files]


def decode_utf8(blob: bytes, name: str, stats: ReadStats, strict: bool) -> str | None:
    """The text, or None (counted) for a file that is not UTF-8 unless `strict` says fail."""
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        if strict:
            raise HarnessError(
                f"{name} is not UTF-8 ({exc.reason} at byte {exc.start})",
                fix="convert or remove the file, or set data.strict_utf8=false to skip such files",
            ) from None
        stats.non_utf8.append(name)
        return None


class StdlibCorpus:
    """The running interpreter's standard library `.py` files, sorted by relative path."""

    def __init__(self, cfg: StdlibSource, strict_utf8: bool):
        self.cfg, self.strict = cfg, strict_utf8
        self.root = Path(sysconfig.get_paths()["stdlib"])
        self.files = self._select()

    def _skip_dir(self, name: str) -> bool:
        if name in STDLIB_NEVER_DIRS or name.startswith("config-"):
            return True
        return not self.cfg.include_tests and name in STDLIB_TEST_DIRS

    def _select(self) -> list[Path]:
        # os.walk with pruning, not rglob: site-packages beside the stdlib can hold 10x more files.
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not self._skip_dir(d)]
            found += [Path(folder, f) for f in files if f.endswith(".py") and not f.startswith("_sysconfigdata_")]
        found.sort(key=lambda p: p.relative_to(self.root).as_posix())
        if self.cfg.max_files is not None:
            found = found[: self.cfg.max_files]
        if self.cfg.max_bytes is not None:
            kept, total = [], 0
            for path in found:
                total += path.stat().st_size
                if total > self.cfg.max_bytes:
                    break
                kept.append(path)
            found = kept
        if not found:
            raise HarnessError(
                f"no standard library files selected under {self.root}",
                fix="raise data.source.max_bytes / max_files",
            )
        return found

    def identity(self, digest: Digest = sha256_file) -> dict:
        return {
            "kind": "stdlib",
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            "settings": self.cfg.model_dump(mode="json"),
            "files": _file_entries(self.files, self.root, digest),
        }

    def documents(self, stats: ReadStats) -> Iterator[Document]:
        for path in self.files:
            name = path.relative_to(self.root).as_posix()
            text = decode_utf8(path.read_bytes(), name, stats, self.strict)
            if text is not None:
                yield Document(name, text)


class LocalCorpus:
    """Files on disk: each text file a document, or one document per JSONL line / Parquet row."""

    def __init__(self, cfg: LocalSource, base_dir: Path, strict_utf8: bool):
        self.cfg, self.strict = cfg, strict_utf8
        self.pattern = Path(cfg.path) if Path(cfg.path).is_absolute() else base_dir / cfg.path
        self.files = self._match()
        self.root = _glob_root(self.pattern)

    def _match(self) -> list[Path]:
        pattern = self.pattern
        if pattern.is_dir():
            files = [p for p in pattern.rglob("*") if p.is_file()]
        else:
            files = [Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file()]
        if not files:
            raise HarnessError(
                f"data.source.path {self.cfg.path!r} matched no files (looked for {pattern})",
                fix="check the path; relative paths start at the recipe's directory",
            )
        return sorted(files, key=lambda p: p.as_posix())

    def identity(self, digest: Digest = sha256_file) -> dict:
        return {"kind": "local", "settings": _without(self.cfg, "path"),
                "files": _file_entries(self.files, self.root, digest)}

    def documents(self, stats: ReadStats) -> Iterator[Document]:
        emitted = 0
        for path in self.files:
            name = path.relative_to(self.root).as_posix()
            for doc in self._read(path, name, stats):
                if self.cfg.max_docs is not None and emitted >= self.cfg.max_docs:
                    return
                emitted += 1
                yield doc

    def _read(self, path: Path, name: str, stats: ReadStats) -> Iterator[Document]:
        if self.cfg.format == "parquet":
            yield from _parquet_documents(path, name, self.cfg.text_field)
            return
        text = decode_utf8(path.read_bytes(), name, stats, self.strict)
        if text is None:
            return
        if self.cfg.format == "text":
            yield Document(name, text)
            return
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                where = f"{name}:{number}"
                yield Document(where, _field(_json_line(line, name, number), self.cfg.text_field, where))


def _glob_root(pattern: Path) -> Path:
    """The directory that document ids are relative to: the path up to its first glob part."""
    if pattern.is_dir():
        return pattern
    parts = pattern.parts
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return Path(*parts[:i])
    return pattern.parent


def _without(cfg, *names: str) -> dict:
    """Settings that change the documents; paths are left out so moving a corpus keeps its hash."""
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in names}


def _json_line(line: str, name: str, number: int) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{name}:{number} is not valid JSON ({exc.msg})", fix="fix or remove that line") from None
    if not isinstance(record, dict):
        raise HarnessError(f"{name}:{number} is a JSON {type(record).__name__}, not an object with a text field")
    return record


def _field(record: dict, text_field: str, where: str) -> str:
    if text_field not in record:
        raise HarnessError(
            f"{where} has no field {text_field!r} (fields: {', '.join(sorted(record)) or 'none'})",
            fix="set data.source.text_field to the field that holds the text",
        )
    value = record[text_field]
    if not isinstance(value, str):
        raise HarnessError(f"{where}: field {text_field!r} is a {type(value).__name__}, not text")
    return value


def _parquet_documents(path: Path, name: str, text_field: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_field not in parquet.schema_arrow.names:
        raise HarnessError(
            f"{name} has no column {text_field!r} (columns: {', '.join(parquet.schema_arrow.names)})",
            fix="set data.source.text_field to the column that holds the text",
        )
    row = 0
    for batch in parquet.iter_batches(columns=[text_field], batch_size=4096):
        for value in batch.column(0).to_pylist():
            if value is not None:
                yield Document(f"{name}[{row}]", value)
            row += 1


def open_source(cfg: DataConfig, base_dir: Path) -> CorpusSource:
    """The corpus a recipe names; fails here (before any work) if it cannot be found."""
    source = cfg.source
    if source.kind == "stdlib":
        return StdlibCorpus(source, cfg.strict_utf8)
    if source.kind == "local":
        return LocalCorpus(source, base_dir, cfg.strict_utf8)
    if source.kind in PROBE_SOURCES:
        from harness.data.synthetic.corpus import open_probe

        return open_probe(source)
    from harness.data.hf_source import HFCorpus

    return HFCorpus(source, base_dir)
