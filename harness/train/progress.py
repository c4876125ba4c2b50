"""The step loop's display: a rich progress bar on a terminal, periodic lines in a log."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def describe(metrics: dict[str, float]) -> str:
    """`loss 3.21 | d2 3.90 d3 4.41 | lr 2.9e-03 | 5.1k tok/s | MFU~4.2%`; a loss part that is
    not a depth keeps its name (`top 5.02`)."""
    others = sorted(k for k in metrics if k.startswith("loss/") and k not in ("loss/depth_1", "loss/total"))
    parts = [f"loss {metrics['loss/depth_1']:.3f}"]
    if others:
        parts.append(" ".join(f"{_short(k)} {metrics[k]:.3f}" for k in others))
    parts.append(f"lr {metrics['lr']:.1e}")
    if "tokens_per_s" in metrics:
        parts.append(f"{metrics['tokens_per_s'] / 1e3:.1f}k tok/s")
    if "mfu" in metrics:
        parts.append(f"MFU~{metrics['mfu']:.1%}")
    return " | ".join(parts)


def _short(key: str) -> str:
    name = key.removeprefix("loss/")
    return f"d{name.removeprefix('depth_')}" if name.startswith("depth_") else name


class StepDisplay:
    def __init__(self, total: int, start: int, enabled: bool, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.total, self.enabled = total, enabled
        self.every = max(1, total // 20)
        self.progress = None
        if enabled and self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"), console=self.console,
            )
            self.task = self.progress.add_task("train", total=total, completed=start, info="")

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def step(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.progress:
            self.progress.update(self.task, completed=step, info=describe(metrics))
        elif step % self.every == 0 or step == self.total:
            self.console.print(f"step {step}/{self.total} | {describe(metrics)}")

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)
