"""The machine's state printed beside every benchmark figure: on shared CPUs the figures
move with the load, so a reader needs it to judge them."""

from __future__ import annotations

import os


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"
