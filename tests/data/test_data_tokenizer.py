"""The tokenizer: exactly vocab_size entries, deterministic across processes and thread
counts, saved so AutoTokenizer loads it offline, and it round-trips Python source exactly."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from harness.data.config import BPETokenizer, DataConfig, PretrainedTokenizer
from harness.data.documents import ReadStats
from harness.data.sources import StdlibCorpus
from harness.data.tokenizer import encode_batches
from harness.errors import HarnessError
from tests.conftest import ROOT
from tests.data.data_helpers import SMALL_STDLIB, local_config, prepare_small, shared_cache, write_corpus

TRICKY = [
    "def f(x):\n\treturn x  # tab-indented, trailing spaces   \n",
    "windows = 1\r\nlone = 2\rend\n",
    "s = 'caf\u00e9 \u65e5\u672c \U0001f40d \u200b zero-width'\n",
    "doc = '<|endoftext|> is plain text inside a file'\n",
    "\n\n\n    \n",
    "x=1;y=2",
]
STDLIB_FILES = ["argparse.py", "tokenize.py", "_pydecimal.py", "fractions.py", "heapq.py"]  # last two non-ASCII


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepare_small(shared_cache(tmp_path_factory))


def _sources() -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return TRICKY + [(root / name).read_text(encoding="utf-8") for name in STDLIB_FILES]


def test_round_trips_python_source_exactly(prepared):
    tokenizer = prepared.load_tokenizer()
    texts = _sources()
    for text, ids in zip(texts, encode_batches(tokenizer, texts)):
        assert max(ids) < prepared.vocab_size
        assert tokenizer.decode(ids, skip_special_tokens=False) == text
        assert prepared.eos_id not in ids  # "<|endoftext|>" in a file is text, not EOS


def test_autotokenizer_loads_it_offline_and_round_trips(prepared, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf = AutoTokenizer.from_pretrained(str(prepared.tokenizer_dir), local_files_only=True)
    assert hf.is_fast and len(hf) == 512 and hf.eos_token_id == prepared.eos_id == 0
    for text in _sources():
        ids = hf(text, add_special_tokens=False)["input_ids"]
        assert hf.decode(ids) == text


def test_exactly_vocab_size_with_special_tokens_first(tmp_path):
    from harness.data.prepare import prepare_data

    specials = ["<|endoftext|>", "<|pad|>", "<|fim|>"]
    cfg = DataConfig(source=SMALL_STDLIB, val_fraction=0.1, tokenizer=BPETokenizer(special_tokens=specials))
    prepared = prepare_data(cfg, vocab_size=700, seq_len=32, base_dir=tmp_path, cache_root=tmp_path / "cache")
    tokenizer = prepared.load_tokenizer()
    assert tokenizer.get_vocab_size() == prepared.vocab_size == 700
    assert [tokenizer.token_to_id(t) for t in specials] == [0, 1, 2] and prepared.eos_id == 0


TRAIN_SCRIPT = """
import sys
from pathlib import Path
from harness.data.config import BPETokenizer, StdlibSource
from harness.data.documents import ReadStats
from harness.data.sources import StdlibCorpus
from harness.data.tokenizer import save_tokenizer, train_bpe
docs = [d.text for d in StdlibCorpus(StdlibSource(max_bytes=400_000), False).documents(ReadStats())]
tok = train_bpe(iter(docs), BPETokenizer(), 1024)
save_tokenizer(tok, "<|endoftext|>", Path(sys.argv[1]))
"""


def test_training_is_deterministic_across_processes_and_threads(tmp_path):
    import os

    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads-{threads}"
        env = {**os.environ, "RAYON_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, str(out)], cwd=ROOT, env=env, check=True)
        outs.append(out)
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir()) and "tokenizer.json" in names
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_pretrained_tokenizer_by_path(prepared, tmp_path):
    from harness.data.prepare import prepare_data

    folder = write_corpus(tmp_path / "corpus")
    cfg = local_config(folder, tokenizer=PretrainedTokenizer(path=str(prepared.tokenizer_dir)))
    again = prepare_data(cfg, vocab_size=600, seq_len=16, base_dir=tmp_path, cache_root=tmp_path / "cache")
    assert again.manifest["tokenizer"]["kind"] == "pretrained" and again.vocab_size == 512
    assert again.eos_id == prepared.eos_id
    (path, _), = again.shards("train")
    assert np.fromfile(path, dtype=again.dtype).max() < 512
    with pytest.raises(HarnessError, match="has 512 tokens but model.vocab_size is 400"):
        prepare_data(cfg, vocab_size=400, seq_len=16, base_dir=tmp_path, cache_root=tmp_path / "cache")


def test_hub_tokenizer_needs_a_revision_and_the_cache(tmp_path, monkeypatch):
    from harness.data.prepare import prepare_data

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = write_corpus(tmp_path / "corpus")
    for tokenizer, message in [
        (PretrainedTokenizer(path="someone/not-here"), "needs a pinned revision"),
        (PretrainedTokenizer(path="someone/not-here", revision="abc123"), "cannot load tokenizer"),
    ]:
        with pytest.raises(HarnessError, match=message):
            prepare_data(local_config(folder, tokenizer=tokenizer), vocab_size=600, seq_len=16,
                         base_dir=tmp_path, cache_root=tmp_path / "cache")


def test_stdlib_reader_yields_the_manifest_files_in_order():
    corpus = StdlibCorpus(SMALL_STDLIB, strict_utf8=False)
    names = [d.id for d in corpus.documents(ReadStats())]
    assert names == [f["path"] for f in corpus.identity()["files"]] == sorted(names)
