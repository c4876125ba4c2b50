"""A progress bar for scoring: programs done of total, programs/s, passes so far, time left.

Drawn on a terminal only (rich disables it when output is a file or a CI log).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def programs_progress(console, description: str) -> Iterator[Callable[[int, int, int], None]]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} programs/s, passed {task.fields[passed]}"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=None, rate="-", passed=0)
        started, first = time.monotonic(), None

        def update(done: int, total: int, passed: int) -> None:
            nonlocal first
            first = done if first is None else first  # rows resumed from a file cost no time
            elapsed = time.monotonic() - started
            rate = f"{(done - first) / elapsed:.1f}" if elapsed > 0 and done > first else "-"
            progress.update(task, completed=done, total=total, rate=rate, passed=passed)

        yield update
