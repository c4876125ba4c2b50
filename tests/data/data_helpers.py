"""Small corpora and preparations shared by the data tests (kept in seconds)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from harness.data.config import DataConfig, LocalSource, StdlibSource
from harness.data.prepare import PreparedData, prepare_data

# The first ~150 KB of the standard library in sorted order: real Python, ~40k tokens.
SMALL_STDLIB = StdlibSource(max_bytes=150_000)
SMALL_VOCAB = 512


def small_config(**changes) -> DataConfig:
    return DataConfig(source=SMALL_STDLIB, **{"val_fraction": 0.1, **changes})


def prepare_small(cache_root: Path, cfg: DataConfig | None = None, *, vocab_size: int = SMALL_VOCAB,
                  seq_len: int = 32, base_dir: Path | None = None) -> PreparedData:
    """Prepared data under a shared cache root: tests asking for the same settings hit the cache."""
    return prepare_data(cfg or small_config(), vocab_size=vocab_size, seq_len=seq_len,
                        base_dir=base_dir or Path.cwd(), cache_root=cache_root)


def code_file(i: int) -> str:
    """A small, distinct Python module: a corpus of these trains a BPE of a few hundred tokens."""
    return textwrap.dedent(f'''\
        """Module number {i}: helpers for shapes and counters."""

        import math


        class Shape{i}:
            def __init__(self, width, height):
                self.width = width + {i}
                self.height = height * {i + 1}

            def area(self):
                return self.width * self.height

            def describe(self):
                return f"shape {{self.width}} x {{self.height}} = {{self.area()}}"


        def count_{i}(items, limit={i * 3}):
            total = 0
            for item in items:
                if item > limit:
                    total += math.floor(item / {i + 2})
            return total
        ''')


def write_corpus(folder: Path, n_files: int = 30, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n_files):
        (folder / f"mod_{i:03d}.py").write_text(code_file(i))
    return folder


def local_config(folder: Path, **changes) -> DataConfig:
    source = changes.pop("source", None) or LocalSource(path=str(folder))
    return DataConfig(source=source, **{"val_fraction": 0.2, **changes})


def shared_cache(tmp_path_factory) -> Path:
    """One cache folder for the whole test session, so equal settings prepare once."""
    return tmp_path_factory.getbasetemp() / "data-cache"
