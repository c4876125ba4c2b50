"""Preemption: Slurm's warning signal becomes a checkpoint, a clean exit and a requeue.

The generated sbatch scripts ask Slurm for SIGUSR1 some minutes before the time limit or a
preemption (`#SBATCH --signal=USR1@<s>`), and export MTP_HARNESS_PREEMPT_FILE. The training
loop (`harness.train.loop`) uses this class as follows; the handler only takes note,
because a checkpoint taken in the middle of an optimizer step would be inconsistent:

    with Preemption() as preemption:
        for step in ...:
            ...one optimizer step...
            if preemption.agreed():          # every rank stops at the same step
                save_checkpoint(step)
                break
    # then the pipeline closes the tracking run and calls preemption.finish(rank)

`finish` leaves the marker file, waits for every rank and exits PREEMPTED_EXIT (SIGINT from
a user exits 130 and leaves no marker). The script sees the marker after srun returns and
runs `scontrol requeue`; the requeued job runs the same `harness run`, which resumes.

The other stages (data, export, evaluate, track) have no step boundary to wait for: there
`Preemption(raising=True)` raises `Stopped` at once, the stage's cleanup removes what it
had half made, and the pipeline closes the run and calls `finish` the same way.

A signal may come before the pipeline's handler exists (Slurm's warning in the first
seconds, while torch and the recipe load): `harness run` and `harness study` install
`early_signals()` before they import anything slow. It only takes note; the next
Preemption installed acts on the noted signal at once, so the exit is 75 with the marker
(130 for ^C), as at any other moment.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry".
PREEMPTED_EXIT = 75
PREEMPT_FILE_ENV = "MTP_HARNESS_PREEMPT_FILE"
DEFAULT_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """A stop signal during a stage that can be abandoned. A BaseException, as KeyboardInterrupt
    is, so that `except Exception` in library code does not swallow it."""

    def __init__(self, preemption: "Preemption"):
        super().__init__(preemption.received.name if preemption.received else "stop requested")
        self.preemption = preemption


class Preemption:
    """Remembers that a stop signal arrived; the loop decides when to act on it (or, with
    `raising`, the signal raises `Stopped` where the process is)."""

    def __init__(self, signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS, *, raising: bool = False):
        self.signals = signals
        self.raising = raising
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> "Preemption":
        self.install()
        if self.raising and self.received is not None:  # a signal noted before this handler existed
            self.restore()
            raise Stopped(self)
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def install(self) -> "Preemption":
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        if _early is not None and _early is not self and _early.received is not None:
            self.received, _early.received = _early.received, None  # this handler acts on it
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)  # a second Ctrl-C stops at once
        first = self.received is None
        self.received = signal.Signals(signum)
        if self.raising and first:  # once: a second signal must not break the cleanup
            raise Stopped(self)

    @property
    def exit_code(self) -> int:
        """130 for a user's Ctrl-C (the shell's convention), PREEMPTED_EXIT otherwise."""
        return 128 + signal.SIGINT if self.received == signal.SIGINT else PREEMPTED_EXIT

    @property
    def requested(self) -> bool:
        return self.received is not None

    def agreed(self) -> bool:
        """True on every rank once any rank got the signal (a MAX all-reduce when distributed).

        Slurm signals the ranks at slightly different moments; without agreement one rank
        would enter the checkpoint collective a step before the others and hang.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        import torch

        # "cuda" is the current device, the local rank's (`train.distributed`); ranks.group_device
        # says the same, but ranks imports this module, so the rule is repeated, not imported.
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([1 if self.requested else 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def finish(self, rank: int = 0, *, wait_for_ranks: bool = True) -> None:
        """After the checkpoint: mark the job for requeue, wait for every rank, exit.
        `wait_for_ranks=False` once the other ranks are gone (rank 0's stages after training)."""
        marker = os.environ.get(PREEMPT_FILE_ENV)
        if marker and rank == 0 and self.received != signal.SIGINT:
            Path(marker).write_text(f"{self.received.name if self.received else 'requested'}\n")
        if wait_for_ranks:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                # Ranks that exit early would make srun kill the others mid-write.
                dist.barrier()
        raise SystemExit(self.exit_code)


_early: Preemption | None = None  # the note-taker of `early_signals`, while it is installed


@contextmanager
def early_signals():
    """Note stop signals from the start of a command until the pipeline's own handler takes
    over (and between the runs of a study); that handler then acts on a noted one at once."""
    global _early
    previous, _early = _early, Preemption().install()
    try:
        yield _early
    finally:
        _early.restore()
        _early = previous
