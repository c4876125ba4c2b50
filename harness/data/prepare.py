"""Data preparation: corpus -> decontamination -> train/val split -> tokenizer -> token
shards and manifest, cached under the hash of every input and written atomically.

The cache key covers the source's identity (file hashes or pinned revision), the
decontamination settings and benchmark checksums, the tokenizer settings, the vocabulary
size, the split and shard settings and FORMAT_VERSION; not the window length or batch, so
arms that differ only in objective or schedule share one preparation. A build happens in a
temporary folder renamed into place at the end: a crash leaves no folder that looks done,
and two processes preparing at once both finish with the same result. A temporary folder
left by a killed process (its pid gone on this host) is removed by the next preparation.

Finding the cache entry needs the corpus files' sha256. Each file's hash is recorded in
`CACHE/file-hashes.json` with its size and modification time, and trusted while both
still match (`verify=True`, `--verify` on the command line, hashes every file again): a
requeued cluster job does not read a terabyte corpus to find data it prepared before. Under
several processes only rank 0 prepares and hashes; the others read its manifest
(`prepare_data_on_ranks`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from rich.console import Console

from harness.atomic import atomic_write_text, publish_dir
from harness.data.config import DataConfig
from harness.data.shards import token_dtype
from harness.data.sources import open_source
from harness.data.tokenizer import check_bpe_vocab, load_pretrained
from harness.errors import HarnessError
from harness.hashing import sha256_directory, sha256_file, sha256_json

# Bump when the shard layout, manifest or any preparation step changes meaning.
FORMAT_VERSION = 1


def default_cache_root() -> Path:
    return Path(os.environ.get("MTP_HARNESS_CACHE") or Path.home() / ".cache" / "mtp-harness")


@dataclass(frozen=True)
class PreparedData:
    """A finished preparation: token shards, tokenizer and the manifest that identifies them."""

    path: Path
    manifest: dict
    manifest_hash: str

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def eos_id(self) -> int:
        return self.manifest["tokenizer"]["eos_id"]

    @property
    def vocab_size(self) -> int:
        """Entries in the tokenizer (model.vocab_size for a trained BPE; at most it otherwise)."""
        return self.manifest["tokenizer"]["vocab_size"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    @cached_property
    def decontamination(self) -> dict:
        """The full report: settings, counts, and each dropped document with the tasks it matched."""
        return json.loads((self.path / "decontamination.json").read_text())

    def shards(self, split: str) -> list[tuple[Path, int]]:
        """(file, tokens) of each shard of a split, in order."""
        if split not in self.manifest["splits"]:
            raise HarnessError(f"unknown split {split!r}; allowed: {', '.join(self.manifest['splits'])}")
        return [(self.path / s["file"], s["tokens"]) for s in self.manifest["splits"][split]["shards"]]

    def load_tokenizer(self):
        """The `tokenizers` object (fast decode for inspection, no transformers import)."""
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.tokenizer_dir / "tokenizer.json"))


def check_same_data(expected_hash: str, prepared: PreparedData) -> None:
    """Refuse to continue a run on data other than the data it started on."""
    if prepared.manifest_hash != expected_hash:
        raise HarnessError(
            f"the data changed: this run started on data {expected_hash[:12]} but the recipe now prepares "
            f"{prepared.manifest_hash[:12]} ({prepared.path})",
            fix="restore the corpus and data settings the run started with, or start a new run",
        )


def prepare_data(
    cfg: DataConfig,
    *,
    vocab_size: int,
    seq_len: int,
    base_dir: Path,
    cache_root: Path | None = None,
    console: Console | None = None,
    verify: bool = False,
) -> PreparedData:
    """The prepared data for a recipe's `data:` section: from the cache when it exists."""
    console = console or Console(stderr=True)
    token_dtype(vocab_size)
    if cfg.tokenizer.kind == "bpe":
        check_bpe_vocab(cfg.tokenizer, vocab_size)
    source = open_source(cfg, Path(base_dir))
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    hashes = FileHashes(root / "file-hashes.json", verify=verify)
    source_manifest = source.identity(digest=hashes.sha256)
    hashes.save()
    key_inputs = _key_inputs(cfg, source_manifest, vocab_size, Path(base_dir))
    key = sha256_json(key_inputs)[:24]
    final = root / "data" / key
    if not (final / "manifest.json").is_file():
        _build_atomically(final, cfg, source, source_manifest, key_inputs, vocab_size, Path(base_dir), console)
    prepared = load_prepared(final)
    check_fits(prepared, seq_len, cfg.lookahead_reserve)
    return prepared


def _key_inputs(cfg: DataConfig, source_manifest: dict, vocab_size: int, base_dir: Path) -> dict:
    from harness.data.benchmarks import CHECKSUMS

    tokenizer = cfg.tokenizer.model_dump(mode="json")
    if cfg.tokenizer.kind == "pretrained":
        tokenizer["content"] = _pretrained_hash(cfg, base_dir, vocab_size)
    decontaminate = cfg.decontaminate.model_dump(mode="json")
    if cfg.decontaminate.enabled:
        decontaminate["benchmark_sha256"] = CHECKSUMS
    return {
        "format_version": FORMAT_VERSION,
        "source_hash": sha256_json(source_manifest),
        "decontaminate": decontaminate,
        "tokenizer": tokenizer,
        "vocab_size": vocab_size,
        "val_fraction": cfg.val_fraction,
        "strict_utf8": cfg.strict_utf8,
        "shard_tokens": cfg.shard_tokens,
    }


def _pretrained_hash(cfg: DataConfig, base_dir: Path, vocab_size: int) -> str:
    """What a pretrained tokenizer resolves to, hashed as saved (so a moved copy still matches)."""
    import tempfile

    wrapped, _ = load_pretrained(cfg.tokenizer, base_dir, vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        wrapped.save_pretrained(tmp)
        return sha256_directory(Path(tmp))


def _build_atomically(final: Path, cfg, source, source_manifest, key_inputs, vocab_size, base_dir, console) -> None:
    from harness.data.build import build

    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(final.parent, console)
    tmp = final.parent / f".tmp-{final.name}.{uuid.uuid4().hex[:8]}.{os.getpid()}@{socket.gethostname()}"
    tmp.mkdir()
    try:
        started = time.time()
        manifest, extras = build(tmp, cfg, source, vocab_size, base_dir, console)
        manifest["format_version"] = FORMAT_VERSION
        manifest["source"]["hash"] = key_inputs["source_hash"]
        _write_json(tmp / "source.json", {**source_manifest, **extras.pop("source")})
        _write_json(tmp / "decontamination.json", extras.pop("decontamination"))
        _write_json(tmp / "provenance.json", _provenance(key_inputs, extras, time.time() - started))
        atomic_write_text(tmp / "manifest.json", _json_text(manifest))  # last: its presence marks a finished build
        try:
            publish_dir(tmp, final)
        except OSError:
            if not (final / "manifest.json").is_file():  # not a concurrent build that finished first
                raise HarnessError(
                    f"cannot move the prepared data into {final}: it exists but holds no manifest",
                    fix=f"delete {final} and prepare again",
                ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _provenance(key_inputs: dict, extras: dict, seconds: float) -> dict:
    """How it was made (not part of the data's identity): versions, timings, cache key inputs."""
    import platform
    from importlib.metadata import version

    libs = {name: version(name) for name in ("tokenizers", "numpy")}
    return {"key_inputs": key_inputs, "versions": libs, "python": platform.python_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(seconds, 2), **extras}


def _json_text(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _write_json(path: Path, value) -> None:
    path.write_text(_json_text(value))


class FileHashes:
    """sha256 of corpus files, remembered with each file's size and mtime and trusted while
    they match (a changed file changes at least one; `verify` trusts nothing)."""

    def __init__(self, path: Path, *, verify: bool = False):
        self.path, self.verify, self.changed = path, verify, False
        try:
            self.known = json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:
            self.known = {}  # a damaged record only costs hashing again

    def sha256(self, file: Path) -> str:
        key = str(Path(file).resolve())
        stat = Path(file).stat()
        entry = self.known.get(key)
        if not self.verify and entry and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            return entry[2]
        digest = sha256_file(file)
        self.known[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        """Merged with what other processes recorded meanwhile (last writer wins per file)."""
        if not self.changed:
            return
        on_disk = FileHashes(self.path).known
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({**on_disk, **self.known}, sort_keys=True))


_BUILD = re.compile(r"^\.tmp-[0-9a-f]+(?:\.[0-9a-f]{8}\.(?P<pid>\d+)@(?P<host>.+)|-(?P<old_pid>\d+)-[0-9a-f]{8})$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_builds(data_root: Path, console: Console) -> None:
    """Delete temporary build folders whose process (on this host) is gone: a kill -9 during
    preparation leaves one, and nothing else would ever remove it."""
    host = socket.gethostname()
    for path in data_root.glob(".tmp-*"):
        match = _BUILD.match(path.name)
        if not match or not path.is_dir():
            continue
        pid = int(match.group("pid") or match.group("old_pid"))
        if (match.group("host") or host) == host and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            console.print(f"removed {path.name}, a data preparation left by process {pid}, which is gone")


def prepare_data_on_ranks(cfg: DataConfig, dist, **kwargs) -> PreparedData:
    """prepare_data under several processes: rank 0 prepares (and hashes the corpus), the
    others wait and read the manifest it names. Where the cache is node-local, the first
    rank of each other node prepares its node's copy (the same key, so the same folder)."""
    from harness.ranks import barrier, main_decides

    if dist.world_size == 1:
        return prepare_data(cfg, **kwargs)
    mine: list[PreparedData] = []  # rank 0's own result, not sent: the others load it by its path

    def work() -> str:
        mine.append(prepare_data(cfg, **kwargs))
        return str(mine[0].path)

    path = Path(main_decides(work, is_main=dist.is_main, what="rank 0 preparing the data"))
    prepared = mine[0] if mine else None
    if not dist.is_main and dist.local_rank == 0 and not (path / "manifest.json").is_file():
        local = prepare_data(cfg, **kwargs)
        if local.path != path:
            raise HarnessError(f"this node prepares {local.path}, rank 0 prepared {path}: the corpus differs",
                               fix="give every node the same corpus files")
    barrier()
    return prepared if prepared is not None else load_prepared(path)


def load_prepared(path: Path) -> PreparedData:
    """A finished preparation from its folder; shard sizes are checked against the manifest."""
    manifest = json.loads((path / "manifest.json").read_text())
    prepared = PreparedData(path, manifest, sha256_json(manifest))
    for split in manifest["splits"]:
        for file, tokens in prepared.shards(split):
            if not file.is_file() or file.stat().st_size != tokens * prepared.dtype.itemsize:
                raise HarnessError(
                    f"prepared data in {path} is damaged ({file.name} is missing or has the wrong size)",
                    fix=f"delete {path} and prepare again",
                )
    return prepared


def check_fits(prepared: PreparedData, seq_len: int, lookahead_reserve: int) -> None:
    """Each split must hold at least one window of S + reserve tokens."""
    from harness.data.loader import count_windows

    for split in prepared.manifest["splits"]:
        tokens = [n for _, n in prepared.shards(split)]
        if count_windows(tokens, seq_len, lookahead_reserve) == 0:
            raise HarnessError(
                f"the {split} split holds {sum(tokens)} tokens, less than one window of "
                f"{seq_len} + {lookahead_reserve} tokens",
                fix="add data, lower data.seq_len, or raise data.val_fraction",
            )
