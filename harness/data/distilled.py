"""Self-distilled training windows on disk (`data.self_distill`), and the loader that serves them.

A folder holds `windows.npy` (the sorted global indices of the training windows it replaces,
int64), `tokens.bin` (their rows, [len(windows), R] in the prepared data's token dtype, read
as a numpy memmap like the shards) and `manifest.json`, written last (`harness/train/
self_distill.py` makes it). Distilled rows cannot live in shards: the loader's windows overlap
by their extra target tokens, which are corpus tokens in one window and generated in the next,
so each window is stored whole.

`DistilledWindows` keeps the corpus loader's (seed, step) -> windows mapping and only swaps
each window's row for its distilled one: the run sees the same windows in the same order as
an arm on corpus targets, with targets from the checkpoint instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.data.loader import TokenWindows
from harness.errors import HarnessError

WINDOWS, TOKENS, MANIFEST = "windows.npy", "tokens.bin", "manifest.json"


class DistilledWindows:
    """The training loader with each window's row read from a distilled folder."""

    def __init__(self, corpus: TokenWindows, path: Path):
        manifest = json.loads((Path(path) / MANIFEST).read_text())
        if manifest["row_length"] != corpus.row_length:
            raise HarnessError(f"the distilled rows in {path} hold {manifest['row_length']} tokens, this run reads "
                               f"{corpus.row_length}", fix=f"delete {path}; it is made again")
        self.corpus, self.path, self.manifest = corpus, Path(path), manifest
        self.windows = np.load(self.path / WINDOWS)
        self._rows = np.memmap(self.path / TOKENS, dtype=np.dtype(manifest["dtype"]), mode="r",
                               shape=(len(self.windows), corpus.row_length))

    def rows(self, windows: np.ndarray) -> np.ndarray:
        """int64 [len(windows), R]: the distilled rows of these global window indices."""
        at = np.searchsorted(self.windows, windows)
        found = (at < len(self.windows)) & (self.windows[np.minimum(at, len(self.windows) - 1)] == windows)
        if not found.all():
            raise HarnessError(f"window {int(windows[~found][0])} was not distilled ({self.path} holds the windows "
                               "of the recipe's steps, batch and seed)", fix=f"delete {self.path}; it is made again")
        return self._rows[at].astype(np.int64)

    def check_global_batch(self, global_batch_size: int, world_size: int = 1) -> None:
        self.corpus.check_global_batch(global_batch_size, world_size)

    def batch(self, step: int, global_batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        """As `TokenWindows.batch`: rank's rows of step's global batch, distilled."""
        import torch

        windows = self.corpus.windows_at(step, global_batch_size, seed, rank, world_size)
        return torch.from_numpy(self.rows(windows))


def load_distilled_manifest(path: Path) -> dict | None:
    """The manifest of a finished folder (its sizes checked), or None when there is none."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        return None
    manifest = json.loads((path / MANIFEST).read_text())
    expected = manifest["windows"] * manifest["row_length"] * np.dtype(manifest["dtype"]).itemsize
    tokens = path / TOKENS
    if not tokens.is_file() or tokens.stat().st_size != expected or not (path / WINDOWS).is_file():
        raise HarnessError(f"distilled data in {path} is damaged ({TOKENS} is missing or has the wrong size)",
                           fix=f"delete {path}; it is made again")
    return manifest
