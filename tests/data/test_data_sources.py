"""Corpus sources: the standard library (sorted, tests and build files left out, manifest with
sizes and hashes), local text/JSONL/Parquet, and Hugging Face datasets read offline."""

from __future__ import annotations

import json
import platform

import pytest

from harness.data.config import DataConfig, HFSource, LocalSource, StdlibSource
from harness.data.documents import ReadStats
from harness.data.prepare import prepare_data
from harness.data.sources import StdlibCorpus, open_source
from harness.errors import HarnessError
from tests.data.data_helpers import code_file, local_config

TEXTS = [code_file(i) for i in range(24)]


def test_stdlib_manifest_is_sorted_and_leaves_out_tests_and_build_files():
    corpus = StdlibCorpus(StdlibSource(), strict_utf8=False)
    identity = corpus.identity()
    paths = [f["path"] for f in identity["files"]]
    assert identity["python"] == platform.python_version() and paths == sorted(paths) and len(paths) > 300
    assert "argparse.py" in paths and "json/decoder.py" in paths
    for path in paths:
        parts = path.split("/")
        assert not {"test", "tests", "idle_test", "site-packages"} & set(parts), path
        assert not parts[-1].startswith("_sysconfigdata_") and not parts[0].startswith("config-"), path
    entry = identity["files"][0]
    assert set(entry) == {"path", "size", "sha256"} and len(entry["sha256"]) == 64
    with_tests = StdlibCorpus(StdlibSource(include_tests=True, max_files=100_000), strict_utf8=False)
    assert any(p["path"].startswith("test/") for p in with_tests.identity()["files"])


def test_stdlib_knobs_take_a_sorted_prefix():
    full = [f["path"] for f in StdlibCorpus(StdlibSource(), False).identity()["files"]]
    assert [f["path"] for f in StdlibCorpus(StdlibSource(max_files=7), False).identity()["files"]] == full[:7]
    capped = StdlibCorpus(StdlibSource(max_bytes=100_000), False).identity()["files"]
    assert sum(f["size"] for f in capped) <= 100_000 and [f["path"] for f in capped] == full[: len(capped)]


def _prep(cfg: DataConfig, tmp_path, **kwargs):
    return prepare_data(cfg, vocab_size=300, seq_len=16, base_dir=tmp_path, cache_root=tmp_path / "cache", **kwargs)


def test_local_jsonl_and_parquet_with_a_named_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"code": t, "id": i}) + "\n" for i, t in enumerate(TEXTS)))
    pq.write_table(pa.table({"code": TEXTS}), tmp_path / "docs.parquet")
    results = []
    for name, fmt in (("docs.jsonl", "jsonl"), ("docs.parquet", "parquet")):
        cfg = local_config(tmp_path, source=LocalSource(path=name, format=fmt, text_field="code"))
        results.append(_prep(cfg, tmp_path))
    assert results[0].manifest["source"]["documents"] == results[1].manifest["source"]["documents"] == len(TEXTS)
    assert results[0].manifest["splits"] == results[1].manifest["splits"]  # same texts, same tokens
    wrong = local_config(tmp_path, source=LocalSource(path="docs.jsonl", format="jsonl", text_field="text"))
    with pytest.raises(HarnessError, match="docs.jsonl:1 has no field 'text' \\(fields: code, id\\)"):
        _prep(wrong, tmp_path)


def test_local_glob_relative_to_the_recipe_dir(tmp_path):
    folder = tmp_path / "src" / "pkg"
    folder.mkdir(parents=True)
    for i, text in enumerate(TEXTS):
        (folder / f"m{i}.py").write_text(text)
    (folder / "notes.txt").write_text("not python\n")
    source = open_source(DataConfig(source=LocalSource(path="src/**/*.py")), tmp_path)
    ids = [d.id for d in source.documents(ReadStats())]
    assert len(ids) == len(TEXTS) and all(i.startswith("pkg/m") for i in ids)  # relative to the glob root


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub: offline flags on, and HF caches pointed into tmp_path."""
    import datasets
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    return tmp_path / "hub"


def test_hf_source_from_a_save_to_disk_copy(tmp_path, offline):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"content": TEXTS, "n": list(range(len(TEXTS)))})}) \
        .save_to_disk(str(tmp_path / "copy"))
    source = HFSource(name="acme/code", revision="v1", split="train", text_field="content", local_path="copy")
    prepared = _prep(local_config(tmp_path, source=source), tmp_path)
    assert prepared.manifest["source"]["documents"] == len(TEXTS)
    identity = json.loads((prepared.path / "source.json").read_text())
    assert identity["copy"] == "save_to_disk" and identity["settings"]["revision"] == "v1"
    capped = _prep(local_config(tmp_path, source=source.model_copy(update={"max_docs": 10})), tmp_path)
    assert capped.manifest["source"]["documents"] == 10
    for change, message in [({"split": "test"}, "no split 'test' \\(splits: train\\)"),
                            ({"text_field": "text"}, "no column 'text' \\(columns: content, n\\)")]:
        with pytest.raises(HarnessError, match=message):
            _prep(local_config(tmp_path, source=source.model_copy(update=change)), tmp_path)


@pytest.mark.parametrize("streaming", [False, True])
def test_hf_source_from_the_hub_cache_at_a_pinned_revision(tmp_path, offline, streaming):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = offline / "datasets--acme--code" / "snapshots" / commit / "data"
    snapshot.mkdir(parents=True)
    (snapshot / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    (offline / "datasets--acme--code" / "refs").mkdir()
    (offline / "datasets--acme--code" / "refs" / "main").write_text(commit)
    for revision in (commit, "main"):
        source = HFSource(name="acme/code", revision=revision, streaming=streaming)
        prepared = _prep(local_config(tmp_path, source=source), tmp_path)
        assert prepared.manifest["source"]["documents"] == len(TEXTS)
        assert json.loads((prepared.path / "source.json").read_text())["commit"] == commit


def test_hf_source_not_in_the_cache_says_how_to_get_it(tmp_path, offline):
    source = HFSource(name="acme/absent", revision="abc")
    with pytest.raises(HarnessError, match="not in the local Hugging Face cache.*hf download acme/absent"):
        _prep(local_config(tmp_path, source=source), tmp_path)
    with pytest.raises(HarnessError, match="local_path 'nope' is not a directory"):
        _prep(local_config(tmp_path, source=HFSource(name="x", revision="r", local_path="nope")), tmp_path)
