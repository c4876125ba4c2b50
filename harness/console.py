"""The console commands print their tables through.

Its own module so that every command group (`harness/*/cli.py`) takes it from here rather
than from `harness/cli.py`, which imports those groups: no import circle.
"""

from __future__ import annotations

import sys

from rich.console import Console


def stdout_console() -> Console:
    """Rich console on stdout; when piped (CI logs, files) it is wide enough that tables do
    not fold."""
    return Console() if sys.stdout.isatty() else Console(width=160)
