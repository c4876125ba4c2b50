"""matplotlib's pyplot on the headless Agg backend: the one place the backend is chosen.

Every figure the harness draws (run loss curves, per-position loss, the comparison's plots)
goes to a file, on machines without a display (clusters, CI, containers).
"""

from __future__ import annotations


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
