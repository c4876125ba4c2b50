"""The `hf` corpus source: a Hugging Face dataset at a pinned revision, read offline.

Nothing is downloaded at run time (offline first). The dataset comes either from a
`save_to_disk` copy (`local_path`), or from the local Hugging Face hub cache, where
`snapshot_download(..., local_files_only=True)` resolves the pinned revision to its snapshot
folder. We go through the hub cache rather than `load_dataset(name, revision=...)` because
offline, `datasets` falls back to "the latest cached version" and ignores the revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.data.config import HFSource
from harness.data.documents import Document, ReadStats
from harness.errors import HarnessError, one_line
from harness.hashing import sha256_file

_BATCH = 1024


class HFCorpus:
    def __init__(self, cfg: HFSource, base_dir: Path):
        self.cfg = cfg
        self.local = None
        if cfg.local_path is not None:
            local = Path(cfg.local_path)
            self.local = local if local.is_absolute() else base_dir / local
            if not self.local.is_dir():
                raise HarnessError(
                    f"data.source.local_path {cfg.local_path!r} is not a directory (looked for {self.local})",
                    fix="point it at a folder written by Dataset.save_to_disk",
                )
            self.snapshot = None
        else:
            self.snapshot = _hub_snapshot(cfg)

    def identity(self, digest=sha256_file) -> dict:
        settings = self.cfg.model_dump(mode="json", exclude={"local_path", "streaming"})
        if self.local is not None:
            # state.json holds a fingerprint that changes with every save; the data files do not.
            files = sorted(p for p in self.local.rglob("*") if p.is_file() and p.name != "state.json")
            entries = [{"path": p.relative_to(self.local).as_posix(), "sha256": digest(p)} for p in files]
            return {"kind": "hf", "settings": settings, "copy": "save_to_disk", "files": entries}
        return {"kind": "hf", "settings": settings, "copy": "hub-cache", "commit": self.snapshot.name}

    def _dataset(self):
        import datasets

        cfg = self.cfg
        try:
            if self.local is not None:
                loaded = datasets.load_from_disk(str(self.local))
            else:
                loaded = datasets.load_dataset(
                    str(self.snapshot), cfg.config, split=cfg.split, streaming=cfg.streaming
                )
        except (FileNotFoundError, ValueError) as exc:
            raise HarnessError(f"cannot read dataset {cfg.name!r}: {one_line(exc)}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if cfg.split not in loaded:
                raise HarnessError(
                    f"dataset {cfg.name!r} has no split {cfg.split!r} (splits: {', '.join(loaded)})",
                    fix="set data.source.split",
                )
            loaded = loaded[cfg.split]
        columns = loaded.column_names
        if columns is not None and cfg.text_field not in columns:
            raise HarnessError(
                f"dataset {cfg.name!r} has no column {cfg.text_field!r} (columns: {', '.join(columns)})",
                fix="set data.source.text_field to the column that holds the text",
            )
        return loaded.select_columns([cfg.text_field])

    def documents(self, stats: ReadStats) -> Iterator[Document]:
        row = 0
        for batch in self._dataset().iter(batch_size=_BATCH):
            for value in batch[self.cfg.text_field]:
                if self.cfg.max_docs is not None and row >= self.cfg.max_docs:
                    return
                if value is not None:
                    yield Document(f"{self.cfg.split}[{row}]", value)
                row += 1


def _hub_snapshot(cfg: HFSource) -> Path:
    """The cached snapshot folder of the pinned revision, or a clear error saying how to get it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(cfg.name, repo_type="dataset", revision=cfg.revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise HarnessError(
            f"dataset {cfg.name!r} at revision {cfg.revision!r} is not in the local Hugging Face cache "
            "(the harness never downloads at run time)",
            fix=f"run `hf download {cfg.name} --repo-type dataset --revision {cfg.revision}` where there is "
            "network, or save_to_disk a copy and set data.source.local_path",
        ) from None
