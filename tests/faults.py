"""Fault injection at a point the test chooses: `harness` in a subprocess that kills itself
(SIGKILL, as kill -9 would) or sends itself a signal at the n-th call of a function it names,
before or after that call runs. The point is a call, not a moment, so each case is the same
on a slow machine and a fast one.

    harness_at("mlflow.tracking.client:MlflowClient.log_artifact", 2, "sync", run_dir)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from tests.conftest import RANK_VARS

_WRAPPER = textwrap.dedent("""
    import importlib, os, signal, sys
    target, nth, when, sig = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    module, _, path = target.partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    real, calls = getattr(owner, name), [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth and when == "before":
            os.kill(os.getpid(), sig)
        out = real(*args, **kwargs)
        if calls[0] == nth and when == "after":
            os.kill(os.getpid(), sig)
        return out

    setattr(owner, name, wrapper)
    sys.argv = ["harness", *sys.argv[5:]]
    from harness.cli import main
    main()
""")


def harness_at(target: str, nth: int, *args, when: str = "after", sig: int = signal.SIGKILL,
               env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `harness ARGS...`; at the `nth` call of `target` ("module:attr.attr") send `sig`."""
    base = {k: v for k, v in os.environ.items() if k not in RANK_VARS}
    argv = [sys.executable, "-c", _WRAPPER, target, str(nth), when, str(int(sig)), *map(str, args)]
    return subprocess.run(argv, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)
