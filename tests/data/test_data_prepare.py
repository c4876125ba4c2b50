"""Preparation: cached by its inputs, written atomically, identified by its manifest; EOS
between documents; a stable split; and a clear error for every kind of bad input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from harness.data import build as build_module
from harness.data.build import split_score
from harness.data.config import LocalSource
from harness.data.prepare import check_same_data, prepare_data
from harness.errors import HarnessError
from tests.data.data_helpers import code_file, local_config, prepare_small, shared_cache, write_corpus


def prep(folder, cache, vocab_size=300, seq_len=16, **changes):
    return prepare_data(local_config(folder, **changes), vocab_size=vocab_size, seq_len=seq_len,
                        base_dir=folder.parent, cache_root=cache)


def test_second_call_is_a_cache_hit_and_shared(tmp_path_factory):
    cache = shared_cache(tmp_path_factory)
    first = prepare_small(cache)
    stamp = (first.path / "manifest.json").stat().st_mtime_ns
    started = time.perf_counter()
    again = prepare_small(cache, seq_len=64)  # another window length shares the preparation
    assert time.perf_counter() - started < 2.0
    assert again.path == first.path and again.manifest_hash == first.manifest_hash
    assert (first.path / "manifest.json").stat().st_mtime_ns == stamp
    assert not [p for p in first.path.parent.iterdir() if p.name.startswith(".tmp")]
    other = prepare_small(cache, vocab_size=600)
    assert other.path != first.path and other.manifest_hash != first.manifest_hash


def test_manifest_records_what_the_data_is(tmp_path_factory):
    prepared = prepare_small(shared_cache(tmp_path_factory))
    m = prepared.manifest
    assert m["dtype"] == "uint16" and m["tokenizer"]["vocab_size"] == 512 and prepared.eos_id == 0
    assert len(m["source"]["hash"]) == 64 and len(m["tokenizer"]["hash"]) == 64
    for split in ("train", "val"):
        shards = m["splits"][split]["shards"]
        assert shards and all(len(s["sha256"]) == 64 and s["tokens"] > 0 for s in shards)
    assert prepared.decontamination["documents_checked"] == m["source"]["documents"]
    check_same_data(prepared.manifest_hash, prepared)  # same data: no error


def test_changed_corpus_is_refused_on_resume(tmp_path):
    folder = write_corpus(tmp_path / "corpus")
    before = prep(folder, tmp_path / "cache")
    (folder / "extra.py").write_text(code_file(99))
    after = prep(folder, tmp_path / "cache")
    assert after.manifest_hash != before.manifest_hash
    with pytest.raises(HarnessError, match="the data changed") as err:
        check_same_data(before.manifest_hash, after)
    assert before.manifest_hash[:12] in str(err.value) and "fix:" in str(err.value)


def test_documents_end_with_eos_and_decode_back(tmp_path):
    folder = write_corpus(tmp_path / "corpus", n_files=12)
    prepared = prep(folder, tmp_path / "cache")
    tokenizer = prepared.load_tokenizer()
    texts = {}
    for split in ("train", "val"):
        (path, _), = prepared.shards(split)
        ids = np.fromfile(path, dtype=prepared.dtype)
        assert ids[-1] == prepared.eos_id
        assert (ids == prepared.eos_id).sum() == prepared.manifest["splits"][split]["documents"]
        docs = np.split(ids, np.flatnonzero(ids == prepared.eos_id) + 1)[:-1]
        texts[split] = {tokenizer.decode(d[:-1].tolist()) for d in docs}
    originals = {p.read_text() for p in folder.iterdir()}
    assert texts["train"] | texts["val"] == originals and not texts["train"] & texts["val"]


def test_split_is_stable_when_files_are_added(tmp_path):
    folder = write_corpus(tmp_path / "corpus", n_files=20)
    val_before = _val_texts(prep(folder, tmp_path / "cache"))
    write_corpus(folder, n_files=20, start=20)
    val_after = _val_texts(prep(folder, tmp_path / "cache"))
    assert val_before <= val_after and len(val_after) > len(val_before)
    assert all(split_score(t) < 0.2 for t in val_after)


def _val_texts(prepared) -> set[str]:
    (path, _), = prepared.shards("val")
    ids = np.fromfile(path, dtype=prepared.dtype)
    tokenizer = prepared.load_tokenizer()
    return {tokenizer.decode(d[:-1].tolist()) for d in np.split(ids, np.flatnonzero(ids == prepared.eos_id) + 1)[:-1]}


def test_many_shards_split_at_document_ends(tmp_path):
    folder = write_corpus(tmp_path / "corpus", n_files=40)
    prepared = prep(folder, tmp_path / "cache", shard_tokens=1024)
    shards = prepared.manifest["splits"]["train"]["shards"]
    assert len(shards) > 3
    for path, tokens in prepared.shards("train"):
        ids = np.fromfile(path, dtype=prepared.dtype)
        assert len(ids) == tokens and ids[-1] == prepared.eos_id


def test_a_crash_leaves_no_cache_that_looks_complete(tmp_path, monkeypatch):
    folder = write_corpus(tmp_path / "corpus")

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(build_module, "write_shards", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        prep(folder, tmp_path / "cache")
    assert list((tmp_path / "cache" / "data").iterdir()) == []
    monkeypatch.undo()
    assert prep(folder, tmp_path / "cache").manifest["splits"]["train"]["tokens"] > 0


def test_tiny_corpus_still_gets_a_validation_document(tmp_path):
    folder = write_corpus(tmp_path / "corpus", n_files=3)
    prepared = prep(folder, tmp_path / "cache", val_fraction=0.001)
    assert prepared.manifest["splits"]["val"]["documents"] == 1


# --- bad input: one clear error each -------------------------------------------------------

def test_empty_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("a.py", "b.py"):
        (folder / name).write_text("  \n\n")
    with pytest.raises(HarnessError, match="the corpus is empty: 2 documents read.*2 empty"):
        prep(folder, tmp_path / "cache")


def test_missing_path(tmp_path):
    with pytest.raises(HarnessError, match="'nowhere/\\*.py' matched no files"):
        prepare_data(local_config(tmp_path, source=LocalSource(path="nowhere/*.py")), vocab_size=300,
                     seq_len=16, base_dir=tmp_path, cache_root=tmp_path / "cache")


def test_non_utf8_is_skipped_and_counted_or_fatal_when_strict(tmp_path):
    folder = write_corpus(tmp_path / "corpus")
    (folder / "latin1.py").write_bytes("# caf\xe9\nx = 1\n".encode("latin-1"))
    prepared = prep(folder, tmp_path / "cache")
    assert prepared.manifest["source"]["skipped_non_utf8"] == 1
    with pytest.raises(HarnessError, match="latin1.py is not UTF-8.*strict_utf8=false"):
        prep(folder, tmp_path / "cache", strict_utf8=True)


def test_vocab_beyond_the_token_dtype(tmp_path):
    with pytest.raises(HarnessError, match="does not fit the uint32 token shards"):
        prep(write_corpus(tmp_path / "corpus"), tmp_path / "cache", vocab_size=2**32 + 1)


def test_vocab_too_small_or_too_large_for_the_corpus(tmp_path):
    folder = write_corpus(tmp_path / "corpus")
    with pytest.raises(HarnessError, match="too small for a byte-level BPE.*at least 257"):
        prep(folder, tmp_path / "cache", vocab_size=64)
    with pytest.raises(HarnessError, match="only supports a BPE of \\d+ tokens.*not model.vocab_size 20000"):
        prep(folder, tmp_path / "cache", vocab_size=20_000)


def test_window_longer_than_the_split(tmp_path):
    with pytest.raises(HarnessError, match="split holds \\d+ tokens, less than one window of 100000"):
        prep(write_corpus(tmp_path / "corpus"), tmp_path / "cache", seq_len=100_000)


PREPARE_SCRIPT = """
import sys
from pathlib import Path
from harness.data.prepare import prepare_data
from tests.data.data_helpers import local_config
folder = Path(sys.argv[1])
p = prepare_data(local_config(folder), vocab_size=300, seq_len=16, base_dir=folder.parent, cache_root=Path(sys.argv[2]))
print(p.manifest_hash)
"""


def test_two_processes_preparing_at_once_agree_with_a_third(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    folder = write_corpus(tmp_path / "corpus")
    shared = tmp_path / "shared-cache"
    runs = [subprocess.Popen([sys.executable, "-c", PREPARE_SCRIPT, str(folder), str(shared)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    hashes = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        hashes.append(out.strip())
    alone = prep(folder, tmp_path / "own-cache")  # same inputs, another process and cache
    assert hashes == [alone.manifest_hash] * 2
    assert [p.name for p in (shared / "data").iterdir()] == [alone.path.name]


# -- the cluster path: trusted hashes, --verify, stale builds, rank 0 prepares -----------------


def _count_hashing(monkeypatch) -> list:
    from harness.data import prepare as prepare_module

    hashed = []
    real = prepare_module.sha256_file
    monkeypatch.setattr(prepare_module, "sha256_file", lambda p: hashed.append(p) or real(p))
    return hashed


def test_a_second_preparation_trusts_recorded_hashes_unless_verify(tmp_path, monkeypatch):
    """A requeued job must not read the whole corpus again to find data it prepared before."""
    folder = write_corpus(tmp_path / "corpus", n_files=12)
    first = prep(folder, tmp_path / "cache")
    hashed = _count_hashing(monkeypatch)
    assert prep(folder, tmp_path / "cache").path == first.path and hashed == []
    verified = prepare_data(local_config(folder), vocab_size=300, seq_len=16, base_dir=folder.parent,
                            cache_root=tmp_path / "cache", verify=True)
    assert verified.path == first.path and len(hashed) == 12
    (folder / "mod_003.py").write_text(code_file(3) + "# changed\n")  # new size and mtime
    hashed.clear()
    assert prep(folder, tmp_path / "cache").path != first.path and len(hashed) == 1


def test_a_build_left_by_a_killed_process_is_removed(tmp_path):
    import socket

    folder = write_corpus(tmp_path / "corpus", n_files=12)
    data_root = tmp_path / "cache" / "data"
    dead = 2**22 + 7  # above pid_max on ordinary systems: no such process
    stale = [data_root / f".tmp-abc123.0badf00d.{dead}@{socket.gethostname()}", data_root / f".tmp-abc123-{dead}-0badf00d"]
    live = data_root / f".tmp-abc123.0badf00d.{dead}@another-host"  # cannot tell from here: kept
    for path in (*stale, live):
        (path / "tokenizer").mkdir(parents=True)
    prep(folder, tmp_path / "cache")
    assert [p.exists() for p in stale] == [False, False] and live.exists()


@pytest.mark.slow
def test_under_two_processes_only_rank_0_hashes_the_corpus(tmp_path):
    """torchrun, 2 ranks on CPU: rank 1 reads rank 0's manifest and hashes nothing."""
    import json
    import os
    import subprocess
    import sys

    folder = write_corpus(tmp_path / "corpus", n_files=12)
    script = tmp_path / "ranks.py"
    script.write_text(f"""
import json, os, sys
from pathlib import Path
from harness.data import prepare as p
from harness.train.distributed import init_distributed
from tests.data.data_helpers import local_config
hashed = []
real = p.sha256_file
p.sha256_file = lambda f: hashed.append(str(f)) or real(f)
dist = init_distributed()
prepared = p.prepare_data_on_ranks(local_config(Path({str(folder)!r})), dist, vocab_size=300, seq_len=16,
                                   base_dir=Path({str(tmp_path)!r}), cache_root=Path({str(tmp_path / 'cache')!r}))
Path({str(tmp_path)!r}, f"rank{{dist.rank}}.json").write_text(json.dumps({{"path": str(prepared.path), "hashed": len(hashed)}}))
""")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["path"] == ranks[1]["path"]
    assert ranks[0]["hashed"] >= 12 and ranks[1]["hashed"] == 0
