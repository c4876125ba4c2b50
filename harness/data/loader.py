"""The deterministic loader: training rows as a pure function of (seed, step, global batch).

Windows start at multiples of S, so every token is an input position once per epoch and
rows overlap only by their extra target tokens; row k is tokens[k*S : k*S + R], with R =
S + n for an objective predicting n tokens (the full target window). The number of windows
is counted as if every arm predicted `lookahead_reserve` tokens, not from R, so arms with
different n get the same windows in the same order and differ only in how many trailing
targets they read. An epoch visits every window once, in a permutation drawn from
(seed, epoch); step k's global batch is positions [k*B, (k+1)*B) of that endless sequence,
so resuming at step k replays nothing and rank r of W reads its contiguous B/W slice of the
same global batch whatever W is. Shards are read-only numpy memmaps: only touched pages are
loaded, and the processes of a node share them through the page cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from harness.errors import HarnessError


class TokenShards(Protocol):
    """What the loader reads of prepared data (`prepare.PreparedData` is one)."""

    dtype: np.dtype

    def shards(self, split: str) -> list[tuple[Path, int]]:
        """(shard file, tokens in it) of one split, in order."""


def count_windows(shard_tokens: list[int], seq_len: int, lookahead_reserve: int) -> int:
    """Windows of S + reserve tokens starting at multiples of S; none crosses a shard end."""
    return sum(max(0, (n - lookahead_reserve) // seq_len) for n in shard_tokens)


def recipe_windows(recipe, prepared: TokenShards, split: str = "train") -> TokenWindows:
    """A split's windows exactly as a recipe's training loop reads them (S, the objective's row
    length, the reserve): the loop, self-distillation and `harness data` share this one."""
    S = recipe.seq_len
    return TokenWindows(prepared, split, seq_len=S, row_length=recipe.objective.row_length(S),
                        lookahead_reserve=recipe.data.lookahead_reserve)


class TokenWindows:
    def __init__(self, prepared: TokenShards, split: str = "train", *, seq_len: int, row_length: int,
                 lookahead_reserve: int):
        if not seq_len < row_length <= seq_len + lookahead_reserve:
            raise HarnessError(
                f"rows of {row_length} tokens do not fit windows of S={seq_len} plus lookahead_reserve="
                f"{lookahead_reserve} (need S < row length <= S + reserve)",
                fix="raise data.lookahead_reserve to at least the tokens the objective predicts",
            )
        self.split, self.seq_len, self.row_length, self.reserve = split, seq_len, row_length, lookahead_reserve
        shards = prepared.shards(split)
        self._shards = [np.memmap(path, dtype=prepared.dtype, mode="r", shape=(n,)) for path, n in shards]
        counts = [count_windows([n], seq_len, lookahead_reserve) for _, n in shards]
        self._first = np.cumsum([0, *counts])  # global index of each shard's first window
        self.n_windows = int(self._first[-1])
        if self.n_windows == 0:
            raise HarnessError(
                f"the {split} split ({sum(n for _, n in shards)} tokens) is shorter than one window of "
                f"{seq_len} + {lookahead_reserve} tokens",
                fix="add data or lower data.seq_len",
            )
        self._epoch: tuple[tuple[int, int], np.ndarray] | None = None

    def rows(self, windows: np.ndarray) -> np.ndarray:
        """int64 [len(windows), R]: the rows of the given global window indices."""
        shard_of = np.searchsorted(self._first, windows, side="right") - 1
        out = np.empty((len(windows), self.row_length), dtype=np.int64)
        for i, (shard, window) in enumerate(zip(shard_of.tolist(), windows.tolist())):
            start = (window - int(self._first[shard])) * self.seq_len
            out[i] = self._shards[shard][start : start + self.row_length]
        return out

    def order(self, epoch: int, seed: int) -> np.ndarray:
        """The permutation of windows in one epoch (the latest one is kept)."""
        key = (epoch, seed)
        if self._epoch is None or self._epoch[0] != key:
            rng = np.random.default_rng([seed % 2**64, epoch])
            self._epoch = (key, rng.permutation(self.n_windows))
        return self._epoch[1]

    def check_global_batch(self, global_batch_size: int, world_size: int = 1) -> None:
        """Fail early (before a model is built) when the split cannot serve this batch."""
        if global_batch_size % world_size:
            raise HarnessError(
                f"global batch {global_batch_size} cannot be split over {world_size} ranks",
                fix="make train.global_batch_size a multiple of the number of processes",
            )
        if self.n_windows < global_batch_size:
            raise HarnessError(
                f"the {self.split} split has {self.n_windows} windows of {self.seq_len} tokens, fewer than one "
                f"global batch of {global_batch_size}",
                fix="add data, or lower train.global_batch_size or data.seq_len",
            )

    def windows_at(self, step: int, global_batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        """Global window indices of rank's slice of step's global batch."""
        self.check_global_batch(global_batch_size, world_size)
        if step < 0 or not 0 <= rank < world_size:
            raise HarnessError(f"need step >= 0 and 0 <= rank < {world_size}; got step {step}, rank {rank}")
        local = global_batch_size // world_size
        positions = step * global_batch_size + rank * local + np.arange(local, dtype=np.int64)
        epochs, offsets = np.divmod(positions, self.n_windows)
        out = np.empty(local, dtype=np.int64)
        for epoch in np.unique(epochs).tolist():
            mask = epochs == epoch
            out[mask] = self.order(epoch, seed)[offsets[mask]]
        return out

    def batch(self, step: int, global_batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        """torch.LongTensor [global_batch_size // world_size, R]: rank's rows of step's global batch."""
        import torch

        windows = self.windows_at(step, global_batch_size, seed, rank, world_size)
        return torch.from_numpy(self.rows(windows))

    def val_batches(self, n_batches: int, batch_size: int) -> list:
        """A fixed set of rows spread evenly over the split (no seed): the same for every arm, run
        and step, so validation losses are comparable. Fewer batches when the split is small."""
        import torch

        count = min(n_batches * batch_size, self.n_windows)
        # Spacing >= 1 when count <= n_windows, so rounding keeps the indices distinct.
        windows = np.floor(np.linspace(0, self.n_windows - 1, count) + 0.5).astype(np.int64)
        rows = self.rows(windows)
        return [torch.from_numpy(rows[i : i + batch_size]) for i in range(0, count, batch_size)]
