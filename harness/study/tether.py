"""Study workers die with their study.

ProcessPoolExecutor's workers are not tied to the process that started them: with the study
killed (kill -9 included), a worker would finish its run holding the run directory's lock
and then wait forever on a queue nobody feeds. Each worker therefore watches its parent from
a daemon thread; once the parent is gone it stops its run the way a preemption does
(SIGTERM: a checkpoint at the next step boundary, the MLflow run closed KILLED, the lock
released) and leaves, and after GRACE_S it is killed outright whatever it was doing.

Why a watch and not Linux's parent-death signal: PR_SET_PDEATHSIG fires when the *thread*
that spawned the worker ends, which in a pool is not the parent's death; reading getppid()
every POLL_S has no such trap, works on macOS too, and costs nothing measurable.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

POLL_S = 0.5
GRACE_S = 120.0  # a laptop run checkpoints in seconds; a worker still busy after this is killed


def tether(parent: int) -> None:
    """The pool's initializer: start watching `parent` (the study's pid)."""
    threading.Thread(target=_watch, args=(parent,), name="study-tether", daemon=True).start()


def orphaned(parent: int) -> bool:
    """The study that started this worker is gone (the worker was handed to another parent)."""
    return os.getppid() != parent


def leave(code: int) -> None:
    """Exit now, without returning to the pool's queue (which no one feeds any more)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe to a dead parent: nothing left to say
            pass
    os._exit(code)


def _watch(parent: int) -> None:
    while not orphaned(parent):
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread: the run stops cleanly
    time.sleep(GRACE_S)
    os.kill(os.getpid(), signal.SIGKILL)
